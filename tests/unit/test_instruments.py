"""Internal instruments without AWS: the domain objects, the request models and the shape of
the TransactWriteItems entries the payment and refund code put into their transactions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from paycore.api.models import CreateCouponRequest, CreditBalanceRequest
from paycore.clock import rfc3339
from paycore.dal import instruments as builders
from paycore.domain.instruments import Balance, Coupon, CouponStatus

AT = "2026-11-25T10:00:00.000Z"
MOMENT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def make_coupon(
    status: CouponStatus = CouponStatus.AVAILABLE, expires_at: str | None = None
) -> Coupon:
    return Coupon(
        id="cpn_1",
        merchant_id="mch_1",
        buyer_id="buyer-1",
        amount=500,
        currency="CNY",
        status=status,
        expires_at=expires_at,
        created_at=AT,
        updated_at=AT,
    )


# -- domain ---------------------------------------------------------------------------------


def test_balance_resource_shape() -> None:
    balance = Balance("mch_1", "buyer-1", "CNY", available=700, frozen=300, updated_at=AT)
    assert balance.resource() == {
        "object": "balance",
        "buyer_id": "buyer-1",
        "currency": "CNY",
        "available": 700,
        "frozen": 300,
    }
    assert Balance("mch_1", "b", "JPY").resource()["available"] == 0


def test_coupon_resource_shape() -> None:
    coupon = make_coupon(expires_at="2030-01-01T00:00:00.000Z")
    assert coupon.resource(MOMENT) == {
        "id": "cpn_1",
        "object": "coupon",
        "buyer_id": "buyer-1",
        "amount": 500,
        "currency": "CNY",
        "status": "available",
        "expires_at": "2030-01-01T00:00:00.000Z",
        "created_at": AT,
    }


@pytest.mark.parametrize(
    ("status", "expires_at", "shown"),
    [
        (CouponStatus.AVAILABLE, None, "available"),
        (CouponStatus.AVAILABLE, "2026-11-25T10:00:00.001Z", "available"),
        (CouponStatus.AVAILABLE, AT, "expired"),  # expiry is the first moment it is gone
        (CouponStatus.AVAILABLE, "2026-11-25T09:59:59.999Z", "expired"),
        # Only an available coupon expires: locked, used stay what they are.
        (CouponStatus.LOCKED, "2020-01-01T00:00:00.000Z", "locked"),
        (CouponStatus.USED, "2020-01-01T00:00:00.000Z", "used"),
    ],
)
def test_coupon_expiry_is_applied_on_read(
    status: CouponStatus, expires_at: str | None, shown: str
) -> None:
    coupon = make_coupon(status, expires_at)
    assert coupon.effective_status(MOMENT).value == shown
    assert coupon.resource(MOMENT)["status"] == shown


def test_coupon_usable_by_checks_owner_currency_state_and_expiry() -> None:
    coupon = make_coupon(expires_at="2026-12-01T00:00:00.000Z")
    assert coupon.usable_by("mch_1", "buyer-1", "CNY", MOMENT)
    assert not coupon.usable_by("mch_2", "buyer-1", "CNY", MOMENT)
    assert not coupon.usable_by("mch_1", "buyer-2", "CNY", MOMENT)
    assert not coupon.usable_by("mch_1", "buyer-1", "USD", MOMENT)
    assert not coupon.usable_by("mch_1", "buyer-1", "CNY", MOMENT + timedelta(days=7))
    assert not make_coupon(CouponStatus.LOCKED).usable_by("mch_1", "buyer-1", "CNY", MOMENT)


# -- request models -------------------------------------------------------------------------


def test_credit_request_is_strict() -> None:
    assert CreditBalanceRequest.model_validate({"amount": 100, "currency": "CNY"}).amount == 100
    for bad in (
        {"amount": 0, "currency": "CNY"},
        {"amount": "100", "currency": "CNY"},
        {"amount": 1.5, "currency": "CNY"},
        {"amount": 1, "currency": "XXX"},
        {"amount": 1, "currency": "cny"},
        {"amount": 1, "currency": "CNY", "extra": True},
        {"currency": "CNY"},
    ):
        with pytest.raises(ValidationError):
            CreditBalanceRequest.model_validate(bad)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2030-01-01T00:00:00Z", "2030-01-01T00:00:00.000Z"),
        ("2030-01-01T08:00:00+08:00", "2030-01-01T00:00:00.000Z"),
        ("2030-01-01t00:00:00.5z", "2030-01-01T00:00:00.500Z"),
        ("2029-12-31T19:00:00.123456-05:00", "2030-01-01T00:00:00.123Z"),
        (None, None),
    ],
)
def test_coupon_expiry_is_kept_as_utc_rfc3339(given: str | None, stored: str | None) -> None:
    request = CreateCouponRequest.model_validate(
        {"buyer_id": "b", "amount": 1, "currency": "CNY", "expires_at": given}
    )
    assert request.expires_at == stored


@pytest.mark.parametrize(
    "expires_at",
    [
        "2030-01-01T00:00:00",  # no zone
        "2030-01-01",
        "2030-01-01 00:00:00Z",
        "20300101T000000Z",
        "2030-02-30T00:00:00Z",
        "2030-01-01T25:00:00Z",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "tomorrow",
        "",
    ],
)
def test_coupon_expiry_must_be_rfc3339_with_zone(expires_at: str) -> None:
    with pytest.raises(ValidationError) as raised:
        CreateCouponRequest.model_validate(
            {"buyer_id": "b", "amount": 1, "currency": "CNY", "expires_at": expires_at}
        )
    assert raised.value.errors()[0]["loc"] == ("expires_at",)


def test_coupon_request_refuses_bad_buyer_ids() -> None:
    for buyer_id in ("", "a b", "x" * 65, 42):
        with pytest.raises(ValidationError):
            CreateCouponRequest.model_validate(
                {"buyer_id": buyer_id, "amount": 1, "currency": "CNY"}
            )


# -- item builders --------------------------------------------------------------------------

BALANCE_ARGS = ("trade", "mch_1", "buyer-1", "CNY", 250)
BALANCE_BUILDERS = (
    builders.freeze_balance,
    builders.debit_balance,
    builders.settle_frozen_balance,
    builders.release_frozen_balance,
    builders.credit_balance,
)


def all_entries() -> list[dict[str, Any]]:
    entries = [build(*BALANCE_ARGS, at=AT) for build in BALANCE_BUILDERS]
    entries += [
        builders.lock_coupon("trade", "cpn_1", "mch_1", "buyer-1", "CNY", "pay_1", AT),
        builders.use_coupon_now("trade", "cpn_1", "mch_1", "buyer-1", "CNY", "pay_1", AT),
        builders.use_coupon("trade", "cpn_1", "pay_1", at=AT),
        builders.release_coupon("trade", "cpn_1", "pay_1", at=AT),
        builders.restore_coupon("trade", "cpn_1", at=AT),
        builders.restore_coupon("trade", "cpn_1", payment_id="pay_1", at=AT),
    ]
    return entries


@pytest.mark.parametrize("entry", all_entries())
def test_every_entry_is_one_well_formed_update(entry: dict[str, Any]) -> None:
    """DynamoDB refuses an expression that names an undeclared #name/:value, and equally a
    declared one the expressions do not use."""
    assert list(entry) == ["Update"]
    update = entry["Update"]
    assert update["TableName"] == "trade"
    assert set(update) <= {
        "TableName",
        "Key",
        "UpdateExpression",
        "ConditionExpression",
        "ExpressionAttributeNames",
        "ExpressionAttributeValues",
    }
    text = update["UpdateExpression"] + " " + update.get("ConditionExpression", "")
    assert set(re.findall(r"#\w+", text)) == set(update["ExpressionAttributeNames"])
    assert set(re.findall(r":\w+", text)) == set(update["ExpressionAttributeValues"])
    assert all("S" in v or "N" in v for v in update["ExpressionAttributeValues"].values())


def test_balance_and_coupon_keys_follow_the_shared_layout() -> None:
    for build in BALANCE_BUILDERS:
        assert build(*BALANCE_ARGS)["Update"]["Key"] == {
            "pk": {"S": "BALANCE#mch_1#buyer-1#CNY"},
            "sk": {"S": "BALANCE"},
        }
    assert builders.use_coupon("trade", "cpn_9", "pay_1")["Update"]["Key"] == {
        "pk": {"S": "COUPON#cpn_9"},
        "sk": {"S": "COUPON"},
    }


def test_conditions_say_the_rule_of_each_move() -> None:
    def condition(entry: dict[str, Any]) -> str:
        return str(entry["Update"].get("ConditionExpression", ""))

    assert "#available >= :amount" in condition(builders.freeze_balance(*BALANCE_ARGS))
    assert "#available >= :amount" in condition(builders.debit_balance(*BALANCE_ARGS))
    assert "#frozen >= :amount" in condition(builders.settle_frozen_balance(*BALANCE_ARGS))
    assert "#frozen >= :amount" in condition(builders.release_frozen_balance(*BALANCE_ARGS))
    assert condition(builders.credit_balance(*BALANCE_ARGS)) == ""
    locked = builders.lock_coupon("t", "cpn_1", "mch_1", "b", "CNY", "pay_1", AT)["Update"]
    assert locked["ExpressionAttributeValues"][":status"] == {"S": "locked"}
    assert locked["ExpressionAttributeValues"][":now"] == {"S": AT}
    used = builders.use_coupon_now("t", "cpn_1", "mch_1", "b", "CNY", "pay_1", AT)["Update"]
    assert used["ExpressionAttributeValues"][":status"] == {"S": "used"}
    assert used["ConditionExpression"] == locked["ConditionExpression"]


@pytest.mark.parametrize("amount", [0, -5, True, 1.5, "10"])
def test_amounts_must_be_positive_integers(amount: Any) -> None:
    for build in BALANCE_BUILDERS:
        with pytest.raises(ValueError, match="positive integer"):
            build("trade", "mch_1", "buyer-1", "CNY", amount)


@pytest.mark.parametrize(
    "moment", ["2026-11-25T10:00:00Z", "2026-11-25T10:00:00.000+00:00", "2026-11-25 10:00"]
)
def test_times_must_be_the_clock_form(moment: str) -> None:
    """Expiry is compared as text in the condition; only the one fixed form compares right."""
    with pytest.raises(ValueError, match="RFC 3339"):
        builders.lock_coupon("t", "cpn_1", "mch_1", "b", "CNY", "pay_1", moment)
    with pytest.raises(ValueError, match="RFC 3339"):
        builders.freeze_balance(*BALANCE_ARGS, at=moment)


def test_updated_at_defaults_to_now() -> None:
    before = rfc3339(datetime.now(UTC))
    values = builders.credit_balance(*BALANCE_ARGS)["Update"]["ExpressionAttributeValues"]
    assert values[":at"]["S"] >= before
