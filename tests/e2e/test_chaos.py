"""Chaos: randomized, concurrent merchant/buyer/channel journeys through the local runtime,
then every money invariant checked against the API, the sandbox's books and the trade table
(see bench/chaos.py; `make chaos` runs the long version).

``CHAOS_SEED=<n>`` replays a run (the seed is in the failure message)."""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Callable
from typing import Any

from bench.chaos import ChaosRun
from bench.invariants import Invariants
from local_runtime.runtime import LocalRuntime

SCENARIOS = 24
CONCURRENCY = 4


def test_random_journeys_keep_every_money_invariant(runtime: LocalRuntime) -> None:
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1, 10**9))
    print(f"chaos seed: {seed}")

    run = ChaosRun(
        runtime, payments=SCENARIOS, concurrency=CONCURRENCY, seed=seed, settle_timeout=40.0
    )
    report = run.run()

    print(report.render())
    assert report.ok, (
        f"chaos seed {seed} broke {len(report.violations)} invariant(s); replay with "
        f"CHAOS_SEED={seed}\n" + report.render()
    )
    _the_invariants_catch_tampered_books(run)


def _the_invariants_catch_tampered_books(run: ChaosRun) -> None:
    """The same checks over the run's final snapshot, each time with one figure changed (as a
    bug that loses or makes money would change it), must each report that invariant: a check
    that could not fail would pass the run above whatever the books said."""
    clean = run.snapshot()

    def violations_after(tamper: Callable[[dict[str, Any]], None]) -> list[str]:
        snap = copy.deepcopy(clean)
        tamper(snap)
        before = len(run.violations())
        Invariants(run, snap).verify()
        return run.violations()[before:]

    assert violations_after(lambda snap: None) == []

    def account_shard_plus_one(snap: dict[str, Any]) -> None:
        snap["accounts"][0]["debits"] = int(snap["accounts"][0].get("debits", 0)) + 1

    def fee_taken_twice(snap: dict[str, Any]) -> None:
        paid = [p for p in snap["payments"].values() if p["status"] == "succeeded" and p["fee"]]
        paid[0]["fee"] = 2 * int(paid[0]["fee"])

    def buyer_balance_made_up(snap: dict[str, Any]) -> None:
        snap["balances"][0]["available"] = int(snap["balances"][0]["available"]) + 100

    for tamper, invariant in [
        (account_shard_plus_one, "[books]"),
        (fee_taken_twice, "[merchant-balance]"),
        (buyer_balance_made_up, "[buyer-ledger]"),
    ]:
        found = violations_after(tamper)
        assert any(v.startswith(invariant) for v in found), (tamper.__name__, found)
