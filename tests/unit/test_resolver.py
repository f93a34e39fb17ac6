"""The API resolver serves one event per call even when calls overlap in one process (the
local runtime runs concurrent invocations as threads; Powertools alone keeps the current event
in a class attribute, one per process)."""

from __future__ import annotations

import json
import threading
from typing import Any

from aws_lambda_powertools.event_handler import Response

from paycore.api.resolver import PaycoreResolver
from tests.support import FakeContext, rest_event


def test_overlapping_calls_each_see_their_own_event() -> None:
    both_started = threading.Barrier(2, timeout=10)
    apps = [PaycoreResolver(), PaycoreResolver()]

    def add_probe(app: PaycoreResolver) -> None:
        @app.get("/probe/<name>")
        def probe(name: str) -> Response[str]:
            seen_first = app.current_event.path
            both_started.wait()  # the other call has set its event by now
            seen_after = app.current_event.path
            body = json.dumps({"first": seen_first, "after": seen_after})
            return Response(200, "application/json", body)

    for app in apps:
        add_probe(app)

    answers: dict[str, Any] = {}

    def call(index: int) -> None:
        event = rest_event("GET", f"/probe/call-{index}")
        answers[f"call-{index}"] = json.loads(apps[index].resolve(event, FakeContext())["body"])

    threads = [threading.Thread(target=call, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    for name, seen in answers.items():
        assert seen == {"first": f"/probe/{name}", "after": f"/probe/{name}"}
    assert len(answers) == 2
