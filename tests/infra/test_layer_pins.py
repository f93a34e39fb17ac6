"""The Lambda layer ships exactly the versions the tests ran against."""

from __future__ import annotations

import re

from tests.support import ROOT

PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]+\])?==([^\s;#]+)")


def _pins(path: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / path).read_text().splitlines():
        if match := PIN.match(line.strip()):
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_every_layer_requirement_is_pinned_to_the_tested_version() -> None:
    layer_lines = [
        line.strip()
        for line in (ROOT / "layers/paycore/requirements.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert all(PIN.match(line) for line in layer_lines), layer_lines
    tested = _pins("requirements/dev.lock")
    for name, version in _pins("layers/paycore/requirements.txt").items():
        assert tested.get(name) == version, f"{name}: layer {version}, tests {tested.get(name)}"
