"""Run callables later, on background threads, without ever blocking a request thread.

One scheduler thread keeps a heap of due calls and hands each to a small thread pool when it
is due, so a slow call (a notification to a slow receiver) never delays the others.
``stop()`` drops every call that is not due yet and stops the thread; calls already running
finish in the background. Used for notification attempts and for delayed refunds.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

logger = logging.getLogger(__name__)


class Scheduler:
    """``call_later(delay, fn)`` runs ``fn()`` on a pool thread ``delay`` seconds from now."""

    def __init__(self, name: str, *, workers: int = 8) -> None:
        self._lock = threading.Condition()
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._stopped = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._thread = threading.Thread(target=self._run, name=f"{name}-scheduler", daemon=True)

    @property
    def stopped(self) -> bool:
        with self._lock:
            return self._stopped

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Forget every call not yet due and stop the thread (idempotent)."""
        with self._lock:
            self._stopped = True
            self._due.clear()
            self._lock.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def call_later(self, delay: float, call: Callable[[], None]) -> bool:
        """Queue ``call``; False (and nothing queued) once the scheduler is stopped."""
        with self._lock:
            if self._stopped:
                return False
            heapq.heappush(self._due, (time.monotonic() + max(delay, 0.0), next(self._seq), call))
            self._lock.notify_all()
            return True

    def _run(self) -> None:
        with self._lock:
            while not self._stopped:
                if not self._due:
                    self._lock.wait()
                    continue
                wait = self._due[0][0] - time.monotonic()
                if wait > 0:
                    self._lock.wait(timeout=wait)
                    continue
                _, _, call = heapq.heappop(self._due)
                try:
                    self._pool.submit(self._guarded, call)
                except RuntimeError:  # the pool is shut down: we are stopping
                    return

    @staticmethod
    def _guarded(call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:
            logger.exception("sandbox background task failed")
