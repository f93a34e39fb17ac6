"""A small template with its own function code, written to a folder for a local runtime test."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path


def write_fixture(
    root: Path, template: str, sources: Mapping[str, str], files: Mapping[str, str] | None = None
) -> Path:
    """Write ``sources`` (relative path: Python source, dedented) and ``files`` (relative path:
    text as it is) under ``root``, and ``template`` as ``root/template.yaml``; its path."""
    for relative, source in sources.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip())
    for relative, text in (files or {}).items():
        (root / relative).write_text(text)
    path = root / "template.yaml"
    path.write_text(template)
    return path
