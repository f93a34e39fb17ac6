"""The money invariants a chaos run checks once everything is final: against the API, every
channel's own books (the sandbox's and the simulators'), the trade table and the ledger
(bench/chaos.py is the runner that drives the scenarios and takes the snapshot).

``INVARIANTS`` names each one; ``Invariants(run, snapshot).verify()`` checks them all through
the run's ``check`` (which counts every check and records every violation with its ids).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from paycore.dal.ledger import entry_from_item
from paycore.ledger import Account, AccountKind, ChannelMoney, Ledger, LedgerError
from paycore.ledger.entries import Event, JournalEntry

if TYPE_CHECKING:
    from bench.chaos import ChaosRun, Merchant, Trace

CURRENCY = "CNY"
BUYERS_PER_MERCHANT = 3
FINAL_ORDER_STATUSES = {"paid", "partially_refunded", "refunded", "closed"}
PAID_ORDER_STATUSES = {"paid", "partially_refunded", "refunded"}
# How each channel's decline reaches paycore (the sandbox says "declined"; Alipay closes the
# trade; WeChat Pay and Stripe leave it to a query).
DECLINE_CODES = {
    "sandbox": "buyer_declined",
    "alipay": "channel_order_closed",
    "wechatpay": "payment_declined",
    "stripe": "payment_declined",
}
FINAL_CHANNEL_ORDERS = {"SUCCESS", "DECLINED", "CLOSED"}
FINAL_CHANNEL_REFUNDS = {"SUCCESS", "FAILED"}

INVARIANTS = {
    "final-states": "every payment and refund is succeeded or failed; every order is paid, "
    "refunded or closed; every channel order SUCCESS/DECLINED/CLOSED and channel refund "
    "SUCCESS/FAILED",
    "reservations": "no balance frozen, no coupon locked, no balance negative",
    "balance-conservation": "per buyer: credited - spent + refunded to balance == available",
    "coupons": "a coupon is used by at most one payment, and is used exactly when a "
    "succeeded payment holds it and has not refunded it whole",
    "one-payment": "at most one succeeded payment per order; a paid order's amounts and "
    "instruments add up",
    "channel-money": "a channel order is SUCCESS exactly when its payment succeeded, for "
    "the payment's channel amount, in the payment's account; at most one per payment",
    "late-payment": "channel money taken for a payment that did not succeed is given back by "
    "one late_payment refund (succeeded; failed only with refund_fail)",
    "refund-bounds": "per order amount_refunded <= amount_paid and == its succeeded merchant "
    "refunds; per instrument and per channel order refunds never exceed what was paid",
    "channel-refunds": "a succeeded refund's channel part is one SUCCESS channel refund; a "
    "failed one has none; no channel refund without a refund of ours",
    "refund-answers": "an over-refund is 409 refund_exceeds_paid; refunds that fit are accepted",
    "events": "exactly one event per state change, no duplicate by id or by (type, object)",
    "webhooks": "every event reached its merchant's receiver, validly signed",
    "executions": "every payment's and channel refund's execution SUCCEEDED",
    "idempotency": "a replayed POST (same Idempotency-Key, same body) answers as the first",
    "api": "no 5xx and no unexpected answer from the API or a channel",
    "outcomes": "each scenario ends as the buyer's action and the faults imply",
    "confirmations": "a merchant's confirmation is 200 and the order confirmed, or 409 "
    "order_not_confirmable because refunds took all of it",
    "books": "every journal entry balances and is named by its cause; the account items hold "
    "exactly the fold of the entries; the trial balance route answers that fold, its totals equal",
    "merchant-balance": "each merchant's escrow + pending + available (GET /v1/balance) equals its "
    "payments less fees and refunds (less the fee they returned), each order's money where its "
    "state puts it",
    "buyer-ledger": "each buyer's stored-balance accounts equal its balance (credits - payments + "
    "refunds); a merchant's issued value equals its buyers' balances plus usable coupons",
    "clearing": "clearing accounts of this run's finished flows are at zero (a failed "
    "late-payment refund stays owed, exactly); no bounded account is below zero",
    "channel-ledger": "each channel account's clearing balance is what that channel's own books "
    "say it holds for this run; fee income is the fees less the fees returned",
    "settlements": "each settlement's figures add up to its entries and count the orders it "
    "settled; all >= 0 and net = gross - fees - refunds + fee_refunded",
}


class Invariants:
    """Every invariant of ``INVARIANTS`` over the final ``snap`` of ``run``."""

    def __init__(self, run: ChaosRun, snap: dict[str, Any]) -> None:
        self.run = run
        self.snap = snap

    def check(self, invariant: str, holds: bool, message: Any) -> bool:
        return self.run.check(invariant, holds, message)

    def violation(self, invariant: str, message: str) -> None:
        self.run.violation(invariant, message)

    def count(self, name: str, amount: int = 1) -> None:
        self.run.count(name, amount)

    def verify(self) -> None:
        snap = self.snap
        orders: dict[str, dict[str, Any]] = snap["orders"]
        payments: dict[str, dict[str, Any]] = snap["payments"]
        refunds: dict[str, dict[str, Any]] = snap["refunds"]
        payments_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for payment in payments.values():
            payments_of[payment["order_id"]].append(payment)
        refunds_of_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
        refunds_of_payment: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for refund in refunds.values():
            if refund["kind"] == "merchant":
                refunds_of_order[refund["order_id"]].append(refund)
            refunds_of_payment[refund["payment_id"]].append(refund)
        channel_orders: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for channel_order in snap["channel_orders"]:
            channel_orders[channel_order["out_trade_no"]].append(channel_order)
        channel_refunds: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for channel_refund in snap["channel_refunds"]:
            channel_refunds[channel_refund["out_trade_no"]].append(channel_refund)

        self._verify_final(snap)
        self._verify_orders(orders, payments_of, refunds_of_order)
        self._verify_instruments(snap, payments, refunds)
        self._verify_channel(payments, refunds_of_payment, channel_orders, channel_refunds)
        self._verify_events(snap, orders, payments, refunds)
        self._verify_executions(snap)
        self._verify_scenarios(orders, payments, refunds_of_payment)
        self._verify_odd_answers(orders, payments)
        self._verify_confirmations(orders)
        Books(self, snap).verify()

    def _verify_confirmations(self, orders: dict[str, dict[str, Any]]) -> None:
        for trace in self.run.traces:
            if trace.confirm_answer is None or trace.order_id not in orders:
                continue
            order = orders[trace.order_id]
            status, code = trace.confirm_answer
            self.count(f"confirmations answered {status}")
            self.check(
                "confirmations",
                (status == 200 and bool(order.get("confirmed_at")))
                or (
                    (status, code) == (409, "order_not_confirmable")
                    and order["status"] == "refunded"
                    and not order.get("confirmed_at")
                ),
                lambda o=order, a=trace.confirm_answer: (
                    f"confirm of {o['id']} answered {a}; the order is {o['status']}, "
                    f"confirmed_at {o.get('confirmed_at')}"
                ),
            )

    def _verify_odd_answers(
        self, orders: dict[str, dict[str, Any]], payments: dict[str, dict[str, Any]]
    ) -> None:
        answers = self.run.odd_answers_seen()
        for method, url, what, status, text in answers:
            self.check("api", False, f"{method} {url} ({what}) answered {status}: {text[:300]}")

    def _verify_final(self, snap: dict[str, Any]) -> None:
        for order in snap["orders"].values():
            self.check(
                "final-states",
                order["status"] in FINAL_ORDER_STATUSES,
                lambda o=order: f"order {o['id']} is {o['status']}",
            )
        for kind in ("payments", "refunds"):
            for obj in snap[kind].values():
                self.check(
                    "final-states",
                    obj["status"] in ("succeeded", "failed"),
                    lambda o=obj: f"{o['id']} is {o['status']}",
                )
        for channel_order in snap["channel_orders"]:
            self.check(
                "final-states",
                channel_order["status"] in FINAL_CHANNEL_ORDERS,
                lambda o=channel_order: (
                    f"channel order {o['out_trade_no']}@{o['account']} is {o['status']}"
                ),
            )
        for channel_refund in snap["channel_refunds"]:
            self.check(
                "final-states",
                channel_refund["status"] in FINAL_CHANNEL_REFUNDS,
                lambda r=channel_refund: f"channel refund {r['out_refund_no']} is {r['status']}",
            )

    def _verify_orders(
        self,
        orders: dict[str, dict[str, Any]],
        payments_of: dict[str, list[dict[str, Any]]],
        refunds_of_order: dict[str, list[dict[str, Any]]],
    ) -> None:
        tracked = {t.order_id for t in self.run.traces if t.order_id}
        for order_id, order in orders.items():
            self.check("one-payment", order_id in tracked, f"order {order_id} was never created")
            attempts = payments_of.get(order_id, [])
            succeeded = [p for p in attempts if p["status"] == "succeeded"]
            self.check(
                "one-payment",
                len(attempts) <= 1,
                lambda o=order_id, a=attempts: (
                    f"order {o} has {len(a)} payments {[p['id'] for p in a]} (the driver made one)"
                ),
            )
            self.check(
                "one-payment",
                len(succeeded) <= 1,
                lambda o=order_id, s=succeeded: f"order {o} paid twice: {[p['id'] for p in s]}",
            )
            paid = order["status"] in PAID_ORDER_STATUSES
            if paid:
                self.check(
                    "one-payment",
                    len(succeeded) == 1
                    and order["amount_paid"] == order["amount"] == succeeded[0]["amount"]
                    and order.get("current_payment_id") == succeeded[0]["id"],
                    lambda o=order, s=succeeded: (
                        f"paid order {o['id']} (amount_paid "
                        f"{o['amount_paid']}/{o['amount']}) has succeeded payments "
                        f"{[(p['id'], p['amount']) for p in s]}"
                    ),
                )
            else:
                self.check(
                    "one-payment",
                    not succeeded and order["amount_paid"] == 0,
                    lambda o=order, s=succeeded: (
                        f"{o['status']} order {o['id']} has "
                        f"amount_paid {o['amount_paid']} and succeeded payments "
                        f"{[p['id'] for p in s]}"
                    ),
                )
            for payment in attempts:
                parts = sum(int(i["amount"]) for i in payment["instruments"])
                self.check(
                    "one-payment",
                    parts == payment["amount"] == order["amount"],
                    lambda p=payment, n=parts: (
                        f"payment {p['id']}: instruments add up to {n}, amount {p['amount']}"
                    ),
                )
            mine = refunds_of_order.get(order_id, [])
            refunded = sum(r["amount"] for r in mine if r["status"] == "succeeded")
            self.check(
                "refund-bounds",
                order["amount_refunded"] == refunded <= order["amount_paid"]
                and order.get("refund_pending", 0) == 0,
                lambda o=order, n=refunded: (
                    f"order {o['id']}: amount_refunded "
                    f"{o['amount_refunded']}, succeeded refunds {n}, "
                    f"amount_paid {o['amount_paid']}, "
                    f"refund_pending {o.get('refund_pending')}"
                ),
            )
            if paid:
                expected_status = (
                    "paid"
                    if refunded == 0
                    else "refunded"
                    if refunded == order["amount_paid"]
                    else "partially_refunded"
                )
                self.check(
                    "refund-bounds",
                    order["status"] == expected_status,
                    lambda o=order, s=expected_status: (
                        f"order {o['id']} is {o['status']}, its refunds make it {s}"
                    ),
                )
            if succeeded:
                self._verify_allocations(order, succeeded[0], mine)

    def _verify_allocations(
        self, order: dict[str, Any], payment: dict[str, Any], refunds: list[dict[str, Any]]
    ) -> None:
        paid_by: Counter[str] = Counter()
        for instrument in payment["instruments"]:
            paid_by[_instrument_key(instrument)] += int(instrument["amount"])
        taken: Counter[str] = Counter()
        given: Counter[str] = Counter()
        for refund in refunds:
            self.check(
                "refund-bounds",
                sum(int(a["amount"]) for a in refund["allocations"]) == refund["amount"],
                lambda r=refund: (
                    f"refund {r['id']} allocations {r['allocations']} do not add "
                    f"up to {r['amount']}"
                ),
            )
            for allocation in refund["allocations"]:
                if refund["status"] != "failed":
                    taken[_instrument_key(allocation)] += int(allocation["amount"])
                if refund["status"] == "succeeded":
                    given[_instrument_key(allocation)] += int(allocation["amount"])
        for key, amount in taken.items():
            self.check(
                "refund-bounds",
                amount <= paid_by.get(key, 0),
                lambda k=key, a=amount: (
                    f"order {order['id']}: refunds took {a} from {k}, "
                    f"which paid {paid_by.get(k, 0)}"
                ),
            )
        self.check(
            "refund-bounds",
            dict(given) == dict(order.get("refunded_by_instrument") or {})
            and dict(taken) == dict(order.get("refund_allocated") or {}),
            lambda: (
                f"order {order['id']}: refunded_by_instrument "
                f"{order.get('refunded_by_instrument')} / refund_allocated "
                f"{order.get('refund_allocated')} disagree with its refunds {dict(given)} / "
                f"{dict(taken)}"
            ),
        )

    def _verify_instruments(
        self,
        snap: dict[str, Any],
        payments: dict[str, dict[str, Any]],
        refunds: dict[str, dict[str, Any]],
    ) -> None:
        spent: Counter[tuple[str, str]] = Counter()
        for payment in payments.values():
            if payment["status"] == "succeeded" and payment.get("balance_amount"):
                spent[(payment["merchant_id"], str(payment["buyer_id"]))] += int(
                    payment["balance_amount"]
                )
        back: Counter[tuple[str, str]] = Counter()
        coupon_back: Counter[str] = Counter()
        for refund in refunds.values():
            if refund["status"] != "succeeded":
                continue
            payment = payments[refund["payment_id"]]
            for allocation in refund["allocations"]:
                if allocation["type"] == "balance":
                    back[(refund["merchant_id"], str(payment["buyer_id"]))] += int(
                        allocation["amount"]
                    )
                elif allocation["type"] == "coupon":
                    coupon_back[str(allocation["coupon_id"])] += int(allocation["amount"])
        balances = {(b["merchant_id"], b["buyer_id"]): b for b in snap["balances"]}
        for key in set(balances) | set(self.run.credited):
            balance = balances.get(key, {"available": 0, "frozen": 0})
            self.check(
                "reservations",
                balance["frozen"] == 0 and balance["available"] >= 0,
                lambda k=key, b=balance: (
                    f"balance of {k[1]} at {k[0]}: available {b['available']}, frozen {b['frozen']}"
                ),
            )
            expected = self.run.credited[key] - spent[key] + back[key]
            self.check(
                "balance-conservation",
                balance["available"] == expected,
                lambda k=key, b=balance, e=expected: (
                    f"balance of {k[1]} at {k[0]}: available "
                    f"{b['available']}, but credited {self.run.credited[k]} - spent {spent[k]} + "
                    f"refunded {back[k]} = {e}"
                ),
            )
        api_checked = 0
        for merchant in self.run.merchants:
            for buyer in range(BUYERS_PER_MERCHANT):
                if api_checked >= 3:
                    break
                key = (merchant.id, f"buyer-{buyer}")
                if key not in balances:
                    continue
                api_checked += 1
                answer = self.run.send(
                    "GET",
                    f"{self.run.api}/v1/buyers/buyer-{buyer}/balance",
                    merchant=merchant,
                    params={"currency": CURRENCY},
                ).json()
                self.check(
                    "balance-conservation",
                    (answer["available"], answer["frozen"])
                    == (balances[key]["available"], balances[key]["frozen"]),
                    lambda a=answer, k=key: (
                        f"API balance {a} differs from the table's {balances[k]}"
                    ),
                )
        self._verify_coupons(snap, payments, coupon_back)

    def _verify_coupons(
        self,
        snap: dict[str, Any],
        payments: dict[str, dict[str, Any]],
        coupon_back: Counter[str],
    ) -> None:
        for coupon in snap["coupons"].values():
            users = [
                p
                for p in payments.values()
                if p.get("coupon_id") == coupon["id"] and p["status"] == "succeeded"
            ]
            holding = [p for p in users if coupon_back[coupon["id"]] < int(p["coupon_amount"])]
            status = "used" if holding else "available"
            self.check(
                "coupons",
                len(users) <= 1 and coupon["status"] == status,
                lambda c=coupon, u=users, e=status: (
                    f"coupon {c['id']} is {c['status']} "
                    f"(expected {e}); succeeded payments using it {[p['id'] for p in u]}, "
                    f"refunded {coupon_back[c['id']]}"
                ),
            )
            self.check(
                "reservations",
                coupon["status"] != "locked",
                lambda c=coupon: f"coupon {c['id']} still locked by {c.get('locked_by')}",
            )

    def _verify_channel(
        self,
        payments: dict[str, dict[str, Any]],
        refunds_of_payment: dict[str, list[dict[str, Any]]],
        channel_orders: dict[str, list[dict[str, Any]]],
        channel_refunds: dict[str, list[dict[str, Any]]],
    ) -> None:
        for payment_id, payment in payments.items():
            found = channel_orders.get(payment_id, [])
            ours = refunds_of_payment.get(payment_id, [])
            late = [r for r in ours if r["kind"] == "late_payment"]
            if not payment.get("channel"):
                self.check(
                    "channel-money",
                    not found and not late,
                    f"internal payment {payment_id} has channel orders or late refunds",
                )
                continue
            taken = [o for o in found if o["status"] == "SUCCESS"]
            self.check(
                "channel-money",
                len(found) <= 1,
                lambda p=payment_id, f=found: (
                    f"payment {p} has {len(f)} channel orders in {[o['account'] for o in f]}"
                ),
            )
            if payment["status"] == "succeeded":
                self.check(
                    "channel-money",
                    len(taken) == 1
                    and taken[0]["amount"] == payment["channel_amount"]
                    and taken[0]["account"] == payment.get("channel_account"),
                    lambda p=payment, t=taken: (
                        f"succeeded payment {p['id']} (channel "
                        f"{p['channel_amount']} at {p.get('channel_account')}) has SUCCESS channel "
                        f"orders {[(o['account'], o['amount']) for o in t]}"
                    ),
                )
                self.check(
                    "late-payment",
                    not late,
                    f"succeeded payment {payment_id} has late-payment refunds",
                )
            elif taken:
                self._verify_late(payment, taken[0], late, channel_refunds.get(payment_id, []))
            else:
                self.check(
                    "late-payment",
                    not late,
                    lambda p=payment_id, f=found: (
                        f"payment {p} has a late-payment refund "
                        f"but its channel orders are {[o['status'] for o in f]}"
                    ),
                )
            self._verify_channel_refunds(payment, ours, found, channel_refunds)

    def _verify_late(
        self,
        payment: dict[str, Any],
        channel_order: dict[str, Any],
        late: list[dict[str, Any]],
        channel_refunds: list[dict[str, Any]],
    ) -> None:
        refund_fail = bool((channel_order.get("behaviour") or {}).get("refund_fail"))
        expected = "failed" if refund_fail else "succeeded"
        taken_back = sum(r["amount"] for r in channel_refunds if r["status"] == "SUCCESS")
        self.check(
            "late-payment",
            len(late) == 1
            and late[0]["amount"] == channel_order["amount"]
            and late[0]["status"] == expected
            and taken_back == (0 if refund_fail else channel_order["amount"]),
            lambda: (
                f"{payment['status']} payment {payment['id']} "
                f"({payment.get('failure_code')}): the channel took {channel_order['amount']}, "
                f"late-payment refunds {[(r['id'], r['amount'], r['status']) for r in late]} "
                f"(expected one {expected}), channel refunded {taken_back}"
            ),
        )
        if late and late[0]["status"] == "failed":
            self.count("late-payment refunds failed (refund_fail; refund.failed sent)")
        elif late:
            self.count(f"late-payment refunds {late[0]['status']}")

    def _verify_channel_refunds(
        self,
        payment: dict[str, Any],
        ours: list[dict[str, Any]],
        found: list[dict[str, Any]],
        channel_refunds: dict[str, list[dict[str, Any]]],
    ) -> None:
        theirs = channel_refunds.get(payment["id"], [])
        by_no: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for channel_refund in theirs:
            by_no[channel_refund["out_refund_no"]].append(channel_refund)
        known = {r["id"] for r in ours}
        for number, items in by_no.items():
            self.check(
                "channel-refunds",
                number in known and len(items) == 1,
                lambda n=number, i=items: (
                    f"channel refund {n} of payment {payment['id']} "
                    f"({len(i)} of them) is no refund of ours"
                ),
            )
        for refund in ours:
            part = sum(int(a["amount"]) for a in refund["allocations"] if a["type"] == "channel")
            if not part:
                continue
            matching = by_no.get(refund["id"], [])
            succeeded = [r for r in matching if r["status"] == "SUCCESS"]
            if refund["status"] == "succeeded":
                holds = len(succeeded) == 1 and succeeded[0]["amount"] == part
            else:
                holds = not succeeded
            self.check(
                "channel-refunds",
                holds,
                lambda r=refund, m=matching, n=part: (
                    f"{r['status']} refund {r['id']} (channel "
                    f"part {n}) has channel refunds {[(c['status'], c['amount']) for c in m]}"
                ),
            )
        for channel_order in found:
            success = sum(
                r["amount"]
                for r in theirs
                if r["status"] == "SUCCESS" and r["account"] == channel_order["account"]
            )
            self.check(
                "refund-bounds",
                success <= channel_order["amount"]
                and success == channel_order.get("amount_refunded", success),
                lambda o=channel_order, s=success: (
                    f"channel order {o['out_trade_no']}: "
                    f"refunded {s} of {o['amount']} (view says {o.get('amount_refunded')})"
                ),
            )

    def _verify_events(
        self,
        snap: dict[str, Any],
        orders: dict[str, dict[str, Any]],
        payments: dict[str, dict[str, Any]],
        refunds: dict[str, dict[str, Any]],
    ) -> None:
        expected = _expected_events(orders, payments, refunds)
        seen: Counter[tuple[str, str]] = Counter()
        owner: dict[str, str] = {}
        for event in snap["events"].values():
            seen[(event["type"], str(event["data_object"].get("id")))] += 1
            owner[event["id"]] = event["merchant_id"]
        for key, times in seen.items():
            self.check(
                "events",
                times == 1,
                lambda k=key, n=times: f"{n} events {k[0]} for {k[1]}",
            )
        for key in expected - set(seen):
            self.violation("events", f"no {key[0]} event for {key[1]}")
        for key in set(seen) - expected:
            self.violation("events", f"unexpected {key[0]} event for {key[1]}")
        self.run.tally("events", len(expected))
        for merchant in self.run.merchants:
            listed = self._list_events(merchant)
            ids = [event["id"] for event in listed]
            stored = {i for i, m in owner.items() if m == merchant.id}
            self.check(
                "events",
                len(ids) == len(set(ids)) and set(ids) == stored,
                lambda m=merchant, i=ids, s=stored: (
                    f"GET /v1/events of {m.id} lists "
                    f"{len(i)} ({len(set(i))} distinct) events, the table holds {len(s)}"
                ),
            )
            self._verify_webhooks(snap, merchant, stored)
        self.count("events", len(snap["events"]))

    def _verify_webhooks(self, snap: dict[str, Any], merchant: Merchant, stored: set[str]) -> None:
        deliveries = list(merchant.receiver.deliveries)
        accepted = {d.webhook_id: d.event for d in deliveries if d.status == 200}
        for event_id in sorted(stored):
            event = snap["events"][event_id]
            body = accepted.get(event_id)
            self.check(
                "webhooks",
                body is not None
                and body.get("id") == event_id
                and body.get("type") == event["type"],
                lambda e=event, m=merchant: (
                    f"event {e['id']} ({e['type']}) never reached {m.id}'s receiver"
                ),
            )
        self.check(
            "webhooks",
            merchant.receiver.rejected == 0,
            lambda m=merchant: (
                f"{m.id}'s receiver refused {m.receiver.rejected} deliveries (bad signature)"
            ),
        )
        strangers = {d.webhook_id for d in deliveries} - stored
        self.check(
            "webhooks",
            not strangers,
            lambda m=merchant, s=strangers: (
                f"{m.id}'s receiver got events that are not its own: {sorted(s)[:5]}"
            ),
        )
        self.count("webhook deliveries", len(deliveries))

    def _list_events(self, merchant: Merchant) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = self.run.send(
                "GET", f"{self.run.api}/v1/events", merchant=merchant, params=params
            ).json()
            listed.extend(page["data"])
            if not page["has_more"] or not page["data"]:
                return listed
            params["starting_after"] = page["data"][-1]["id"]

    def _verify_executions(self, snap: dict[str, Any]) -> None:
        for kind, name in self.run.execution_names(snap):
            status = self.run.execution_status(kind, name)
            self.check(
                "executions",
                status == "SUCCEEDED",
                lambda k=kind, n=name, s=status: f"{k} execution {n} is {s}",
            )

    def _verify_scenarios(
        self,
        orders: dict[str, dict[str, Any]],
        payments: dict[str, dict[str, Any]],
        refunds_of_payment: dict[str, list[dict[str, Any]]],
    ) -> None:
        for trace in self.run.traces:
            plan = trace.plan
            if trace.payment_id is None or trace.order_id is None:
                continue
            payment = payments.get(trace.payment_id)
            order = orders.get(trace.order_id)
            if payment is None or order is None:
                self.violation("outcomes", f"scenario {plan.index}: order or payment missing")
                continue
            outcome = payment["status"]
            if outcome == "failed":
                outcome += f" ({payment.get('failure_code')})"
            self.count(f"payment {outcome}")
            what = (
                f"scenario {plan.index} ({plan.kind}, {plan.action}"
                f"{', close race' if plan.close_race else ''}, faults {plan.faults}): "
                f"payment {payment['id']} {outcome}, order {order['id']} {order['status']}"
            )
            if plan.expect_success:
                holds = payment["status"] == "succeeded" and order["status"] in PAID_ORDER_STATUSES
            elif plan.close_race:
                closed = [a for a in trace.close_answers if a[0] == 200]
                if payment["status"] == "succeeded":
                    holds = not closed and order["status"] in PAID_ORDER_STATUSES
                else:
                    holds = order["status"] == "closed" and trace.buyer_answer != (200, "SUCCESS")
                self.count(
                    "close races won by the " + ("buyer" if outcome == "succeeded" else "merchant")
                )
            else:
                code = "order_closed" if plan.action == "abandon" or plan.close_ignored else None
                code = code or DECLINE_CODES[str(plan.channel)]
                holds = (
                    payment["status"] == "failed"
                    and payment.get("failure_code") == code
                    and order["status"] == "closed"
                )
            self.check("outcomes", holds, what)
            late = [r for r in refunds_of_payment.get(payment["id"], []) if r["kind"] != "merchant"]
            # The channel took money after the (ignored) close: it must come back.
            taken_late = plan.close_ignored and trace.buyer_answer == (200, "SUCCESS")
            self.check(
                "outcomes",
                bool(late) == taken_late,
                f"{what}: {len(late)} late-payment refunds",
            )
            self._verify_refund_answers(trace, order)

    def _verify_refund_answers(self, trace: Trace, order: dict[str, Any]) -> None:
        asked = trace.refund_answers
        fitting = [a for a in asked if a[0] <= order["amount"]]
        for amount, status, code, refund_id in asked:
            self.count("refund requests " + ("accepted" if status == 202 else f"{status} {code}"))
            if amount > order["amount"]:
                self.check(
                    "refund-answers",
                    (status, code) == (409, "refund_exceeds_paid"),
                    f"over-refund {amount} of order {order['id']} ({order['amount']}) "
                    f"answered {status} {code} {refund_id or ''}",
                )
            else:
                allowed = {(202, None), (409, "refund_exceeds_paid")}
                self.check(
                    "refund-answers",
                    (status, code if status != 202 else None) in allowed,
                    f"refund {amount} of order {order['id']} answered {status} {code}",
                )
        if fitting and sum(a[0] for a in fitting) <= order["amount"]:
            refused = [a for a in fitting if a[1] != 202]
            self.check(
                "refund-answers",
                not refused,
                lambda: (
                    f"order {order['id']} ({order['amount']}): refunds "
                    f"{[a[0] for a in fitting]} fit, yet {[(a[0], a[2]) for a in refused]} refused"
                ),
            )


def _instrument_key(instrument: dict[str, Any]) -> str:
    kind = str(instrument["type"])
    return f"coupon:{instrument['coupon_id']}" if kind == "coupon" else kind


# -- the books -------------------------------------------------------------------------------


class Books:
    """The ledger invariants over a final snapshot: the whole table's books, and this run's
    merchants' accounts against their payments, refunds, balances, coupons, settlements and
    every channel's own books."""

    def __init__(self, invariants: Invariants, snap: dict[str, Any]) -> None:
        self.check = invariants.check
        self.count = invariants.count
        self.run = invariants.run
        self.snap = snap
        self.mine = {merchant.id for merchant in self.run.merchants}
        self.entries: list[JournalEntry] = []
        for item in snap["entries"]:
            try:
                self.entries.append(entry_from_item(item))
            except (LedgerError, ValueError, KeyError) as exc:
                self.check("books", False, f"entry {item.get('id')} does not parse: {exc}")
        self.everyone = Ledger(self.entries)
        self.ours = Ledger(e for e in self.entries if e.metadata.get("merchant_id") in self.mine)

    def verify(self) -> None:
        self._books()
        self._merchants()
        self._buyers()
        self._clearing()
        self._channel()
        self._settlements()
        self.count("journal entries", len(self.entries))

    def _balance(self, account_id: str, ledger: Ledger | None = None) -> int:
        return (ledger or self.ours).balance(Account.parse(account_id))

    def _books(self) -> None:
        stored: dict[str, list[int]] = {}
        for item in self.snap["accounts"]:
            line = stored.setdefault(str(item["account"]), [0, 0])
            line[0] += int(item.get("debits", 0))
            line[1] += int(item.get("credits", 0))
        folded = {
            account.id: [totals.debits, totals.credits]
            for account in self.everyone.accounts()
            for totals in [self.everyone.totals(account)]
        }
        differ = sorted(a for a in stored.keys() | folded.keys() if stored.get(a) != folded.get(a))
        self.check(
            "books",
            not differ,
            lambda: (
                "account items differ from the fold of the entries: "
                + "; ".join(f"{a} items {stored.get(a)} fold {folded.get(a)}" for a in differ[:5])
            ),
        )
        answer = self.run.send(
            "GET",
            f"{self.run.api}/v1/ledger/trial_balance",
            admin=True,
            params={"currency": CURRENCY},
            what="trial balance",
        )
        served = answer.json() if answer.status_code == 200 else {}
        expected = self.everyone.trial_balance(CURRENCY).resource()
        self.check(
            "books",
            served == expected and served["total_debits"] == served["total_credits"],
            lambda: (
                f"the trial balance answered {answer.status_code} with totals "
                f"{served.get('total_debits')}/{served.get('total_credits')}, the fold gives "
                f"{expected['total_debits']}/{expected['total_credits']} over "
                f"{len(expected['accounts'])} accounts"
            ),
        )

    def _merchants(self) -> None:
        orders: dict[str, dict[str, Any]] = self.snap["orders"]
        payments: dict[str, dict[str, Any]] = self.snap["payments"]
        refunds: dict[str, dict[str, Any]] = self.snap["refunds"]
        for merchant in self.run.merchants:
            held: Counter[str] = Counter()
            for order in orders.values():
                if order["merchant_id"] != merchant.id or not order.get("channel_paid"):
                    continue
                money = ChannelMoney(
                    int(order["channel_paid"]),
                    int(order["paid_fee"]),
                    int((order.get("refunded_by_instrument") or {}).get("channel", 0)),
                )
                held[_holding(order)] += money.net
                self.check(
                    "merchant-balance",
                    money.net >= 0,
                    f"order {order['id']} holds {money.net} of the merchant's money",
                )
            paid = sum(
                int(p["channel_amount"]) - int(p["fee"])
                for p in payments.values()
                if p["merchant_id"] == merchant.id and p["status"] == "succeeded"
            )
            given_back = sum(
                _channel_part(r) - int(r.get("fee_refunded") or 0)
                for r in refunds.values()
                if r["merchant_id"] == merchant.id
                and r["kind"] == "merchant"
                and r["status"] == "succeeded"
            )
            answer = self.run.send("GET", f"{self.run.api}/v1/balance", merchant=merchant).json()
            shown = next((d for d in answer["data"] if d["currency"] == CURRENCY), None) or {}
            self.check(
                "merchant-balance",
                {k: shown.get(k, 0) for k in ("escrow", "pending", "available")}
                == {k: held[k] for k in ("escrow", "pending", "available")}
                and sum(held.values()) == paid - given_back,
                lambda m=merchant, s=shown, h=dict(held), p=paid, g=given_back: (
                    f"{m.id}: GET /v1/balance {s}, its orders hold {h}, payments' net {p} less "
                    f"refunds' {g} = {p - g}"
                ),
            )

    def _buyers(self) -> None:
        usable: Counter[str] = Counter()
        for coupon in self.snap["coupons"].values():
            if coupon["status"] in ("available", "locked"):
                usable[coupon["merchant_id"]] += int(coupon["amount"])
        given: Counter[str] = Counter()
        for balance in self.snap["balances"]:
            merchant, buyer = balance["merchant_id"], balance["buyer_id"]
            given[merchant] += int(balance["available"]) + int(balance["frozen"])
            booked = (
                self._balance(f"buyer:{merchant}:{buyer}:available:{CURRENCY}"),
                self._balance(f"buyer:{merchant}:{buyer}:frozen:{CURRENCY}"),
            )
            self.check(
                "buyer-ledger",
                booked == (balance["available"], balance["frozen"]),
                lambda b=balance, k=booked: (
                    f"buyer {b['buyer_id']} of {b['merchant_id']}: balance "
                    f"{b['available']}/{b['frozen']}, its accounts {k[0]}/{k[1]}"
                ),
            )
        for merchant in self.run.merchants:
            issued = self._balance(f"merchant:{merchant.id}:issued_value:{CURRENCY}")
            self.check(
                "buyer-ledger",
                issued == given[merchant.id] + usable[merchant.id],
                lambda m=merchant, i=issued: (
                    f"{m.id}: issued value {i}, its buyers hold {given[m.id]} and "
                    f"{usable[m.id]} in usable coupons"
                ),
            )

    def _clearing(self) -> None:
        owed: Counter[str] = Counter()
        for refund in self.snap["refunds"].values():
            if refund["kind"] == "late_payment" and refund["status"] == "failed":
                account = f"channel:{refund['channel']}:{refund['channel_account']}"
                owed[f"{account}:late_payments:{refund['currency']}"] += int(refund["amount"])
        open_accounts = {a.id: self.ours.balance(a) for a in self.ours.open_clearing()}
        self.check(
            "clearing",
            open_accounts == dict(owed),
            lambda: (
                f"clearing accounts not at zero {open_accounts}; failed late refunds owe "
                f"{dict(owed)}"
            ),
        )
        below = [a.id for a in self.everyone.below_zero()]
        self.check("clearing", not below, f"bounded accounts below zero: {below}")

    def _channel(self) -> None:
        payments: dict[str, dict[str, Any]] = self.snap["payments"]
        holds: Counter[tuple[str, str]] = Counter()  # (channel, account) -> what it holds
        for channel_order in self.snap["channel_orders"]:
            if channel_order["status"] == "SUCCESS":
                key = (channel_order["channel"], channel_order["account"])
                holds[key] += int(channel_order["amount"])
        for channel_refund in self.snap["channel_refunds"]:
            if channel_refund["status"] == "SUCCESS":
                key = (channel_refund["channel"], channel_refund["account"])
                holds[key] -= int(channel_refund["amount"])
        booked = {
            (a.scope[0], a.scope[1]): self.ours.balance(a)
            for a in self.ours.accounts(CURRENCY)
            if a.kind is AccountKind.CHANNEL_CLEARING
        }
        self.count("channel accounts checked", len(booked))
        self.check(
            "channel-ledger",
            {k: v for k, v in booked.items() if v} == {k: v for k, v in holds.items() if v},
            lambda: f"channel clearing accounts {booked}, the channels' books {dict(holds)}",
        )
        fees = sum(int(p["fee"]) for p in payments.values() if p["status"] == "succeeded")
        returned = sum(
            int(r.get("fee_refunded") or 0)
            for r in self.snap["refunds"].values()
            if r["status"] == "succeeded"
        )
        income = self._balance(f"platform:fees:{CURRENCY}")
        self.check(
            "channel-ledger",
            income == fees - returned,
            f"fee income {income} from this run's entries, fees {fees} - returned {returned}",
        )

    def _settlements(self) -> None:
        entry_net: Counter[tuple[str, str]] = Counter()
        for entry in self.entries:
            meta = entry.metadata
            if entry.event is Event.SETTLEMENT and meta.get("merchant_id") in self.mine:
                entry_net[(str(meta["merchant_id"]), str(meta["date"]))] += int(meta["net"])
        settled: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for order in self.snap["orders"].values():
            if order.get("settled_on"):
                settled[(order["merchant_id"], order["settled_on"])].append(order)
        figures_of = {(s["merchant_id"], s["sk"]): s for s in self.snap["settlements"]}
        for key in figures_of.keys() | settled.keys():
            figures = figures_of.get(key, {})
            own = settled.get(key, [])
            shown = {name: int(figures.get(name, 0)) for name in _FIGURES}
            net = shown["gross"] - shown["fees"] - shown["refunds"] + shown["fee_refunded"]
            refunded_now = sum(
                int((o.get("refunded_by_instrument") or {}).get("channel", 0)) for o in own
            )
            message = (
                f"settlement {key[1]} of {key[0]}: figures {shown} (net {figures.get('net')}), "
                f"{len(own)} orders settled, its entries moved {entry_net[key]}"
            )
            self.check(
                "settlements",
                all(value >= 0 for value in shown.values())
                and net == int(figures.get("net", 0)) == entry_net[key] >= 0
                and shown["payments_count"] == len(own)
                and shown["gross"] == sum(int(o["channel_paid"]) for o in own)
                and shown["fees"] == sum(int(o["paid_fee"]) for o in own)
                and shown["refunds"] <= refunded_now
                and shown["refunds_count"] <= sum(int(o.get("channel_refunds", 0)) for o in own),
                message,
            )
            self.count("settlements checked")


_FIGURES = ("payments_count", "gross", "fees", "refunds_count", "refunds", "fee_refunded")


def _expected_events(
    orders: dict[str, dict[str, Any]],
    payments: dict[str, dict[str, Any]],
    refunds: dict[str, dict[str, Any]],
) -> set[tuple[str, str]]:
    """(type, object id) of every event the final state says was caused."""
    expected: set[tuple[str, str]] = set()
    for payment in payments.values():
        if payment["status"] == "succeeded":
            expected.add(("order.paid", payment["order_id"]))
        elif payment["status"] == "failed":
            expected.add(("payment.failed", payment["id"]))
    for order in orders.values():
        if order["status"] == "closed":
            expected.add(("order.closed", order["id"]))
        if order.get("confirmed_at"):
            expected.add(("order.confirmed", order["id"]))
    for refund in refunds.values():
        if refund["status"] in ("succeeded", "failed"):
            expected.add((f"refund.{refund['status']}", refund["id"]))
    return expected


def _holding(order: dict[str, Any]) -> str:
    if order.get("settled_on"):
        return "available"
    if order.get("trade_type") == "guaranteed" and not order.get("confirmed_at"):
        return "escrow"
    return "pending"


def _channel_part(refund: dict[str, Any]) -> int:
    return sum(int(a["amount"]) for a in refund["allocations"] if a["type"] == "channel")
