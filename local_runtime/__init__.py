"""Runs template.yaml on one machine: moto for AWS, the handlers in-process (dev tooling only).

``python -m local_runtime`` serves the backend; tests and benchmarks use :class:`LocalRuntime`.
The names are imported lazily so that ``local_runtime.sandbox`` can be used without moto.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local_runtime.profile import LocalProfile
    from local_runtime.runtime import LocalRuntime, PortInUseError

__all__ = ["LocalProfile", "LocalRuntime", "PortInUseError"]


def __getattr__(name: str) -> Any:
    if name in ("LocalRuntime", "PortInUseError"):
        from local_runtime import runtime

        return getattr(runtime, name)
    if name == "LocalProfile":
        from local_runtime.profile import LocalProfile

        return LocalProfile
    raise AttributeError(name)
