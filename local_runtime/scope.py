"""Per-thread invocation scope, and an ``os.environ`` that honours it.

Many functions run in one process, on many threads, each with its own environment variables.
``os.environ`` is process-wide, so two functions invoked at the same time would see each other's
values (measured: 104 of 200 concurrent invocations did). :class:`OverlayEnviron` replaces
``os.environ`` with a mapping that reads the invoking thread's overlay first and the real
process environment second, so each invocation sees exactly its own function's variables.
The same scope tells the SDK call counter which function made a call.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field

_local = threading.local()
_install_lock = threading.Lock()
_install_count = 0
_original_environ: MutableMapping[str, str] | None = None


@dataclass
class Scope:
    """What runs on this thread: a function's logical id and its (mutable) environment.

    A value of ``None`` in ``env`` hides a variable of the process environment.
    """

    function_id: str
    env: dict[str, str | None] = field(default_factory=dict)


def current() -> Scope | None:
    """The innermost scope entered on this thread, if any."""
    stack: list[Scope] | None = getattr(_local, "stack", None)
    return stack[-1] if stack else None


@contextmanager
def enter(function_id: str, env: Mapping[str, str]) -> Iterator[Scope]:
    """Run the body as ``function_id`` with ``env`` layered over the process environment."""
    stack: list[Scope] | None = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    scope = Scope(function_id, dict(env))
    stack.append(scope)
    try:
        yield scope
    finally:
        stack.pop()


class OverlayEnviron(MutableMapping[str, str]):
    """``os.environ`` replacement: the current thread's scope env over the process env."""

    def __init__(self, base: MutableMapping[str, str]) -> None:
        self._base = base

    @staticmethod
    def _overlay() -> dict[str, str | None] | None:
        scope = current()
        return scope.env if scope is not None else None

    def __getitem__(self, key: str) -> str:
        overlay = self._overlay()
        if overlay is not None and key in overlay:
            value = overlay[key]
            if value is None:
                raise KeyError(key)
            return value
        return self._base[key]

    def __setitem__(self, key: str, value: str) -> None:
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"str expected, not {type(value).__name__}")
        overlay = self._overlay()
        if overlay is not None:
            overlay[key] = value
        else:
            self._base[key] = value

    def __delitem__(self, key: str) -> None:
        overlay = self._overlay()
        if overlay is None:
            del self._base[key]
            return
        if key not in self:
            raise KeyError(key)
        overlay[key] = None

    def __iter__(self) -> Iterator[str]:
        keys = dict.fromkeys(self._base)
        overlay = self._overlay()
        if overlay:
            for key, value in overlay.items():
                if value is None:
                    keys.pop(key, None)
                else:
                    keys[key] = None
        return iter(list(keys))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def copy(self) -> dict[str, str]:
        """Like ``os.environ.copy()``: a plain dict snapshot as this thread sees it."""
        return dict(self)

    def __repr__(self) -> str:
        return f"OverlayEnviron({self.copy()!r})"


def install_environ_overlay() -> None:
    """Replace ``os.environ`` with an :class:`OverlayEnviron` (reference-counted)."""
    global _install_count, _original_environ  # noqa: PLW0603 - process-wide patch
    with _install_lock:
        if _install_count == 0:
            _original_environ = os.environ
            setattr(os, "environ", OverlayEnviron(os.environ))  # noqa: B010
        _install_count += 1


def uninstall_environ_overlay() -> None:
    """Undo :func:`install_environ_overlay` once every installer has uninstalled."""
    global _install_count, _original_environ  # noqa: PLW0603 - process-wide patch
    with _install_lock:
        if _install_count == 0:
            return
        _install_count -= 1
        if _install_count == 0 and _original_environ is not None:
            setattr(os, "environ", _original_environ)  # noqa: B010
            _original_environ = None
