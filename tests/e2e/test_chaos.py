"""Chaos: randomized, concurrent merchant/buyer/channel journeys through the local runtime,
then every money invariant checked against the API, the sandbox's books and the trade table
(see bench/chaos.py; `make chaos` runs the long version).

``CHAOS_SEED=<n>`` replays a run (the seed is in the failure message)."""

from __future__ import annotations

import os
import random

from bench.chaos import run_chaos
from local_runtime.runtime import LocalRuntime

SCENARIOS = 24
CONCURRENCY = 4


def test_random_journeys_keep_every_money_invariant(runtime: LocalRuntime) -> None:
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1, 10**9))
    print(f"chaos seed: {seed}")

    report = run_chaos(
        runtime,
        payments=SCENARIOS,
        concurrency=CONCURRENCY,
        seed=seed,
        settle_timeout=40.0,
    )

    print(report.render())
    assert report.ok, (
        f"chaos seed {seed} broke {len(report.violations)} invariant(s); replay with "
        f"CHAOS_SEED={seed}\n" + report.render()
    )
