"""Run Lambda functions in-process: the one invocation entry point every event source uses.

A Lambda execution environment handles one event at a time and keeps module-level state
(Powertools resolver, logger, metrics, boto3 clients) between events. :class:`LambdaHost` mirrors
that with a pool of handler *instances* per function: each instance is a separately imported
copy of the function's module (under a unique module name, since every function has an
``app.py``), an invocation borrows an idle instance or imports a new one up to a limit, and no
instance ever runs two events at once. Each invocation runs inside a :mod:`local_runtime.scope`
so it sees its own function's environment variables and its SDK calls are attributed to it.

moto routes every invoke (the Invoke API, which Step Functions tasks use) through
``LambdaFunction._invoke_lambda``; :func:`install_moto_hook` points it at :meth:`LambdaHost.invoke`,
and hooks ``LambdaFunction.invoke`` (which sees the invocation type) so that an
``InvocationType="Event"`` invoke is queued (:mod:`local_runtime.async_invoke`) and answered 202
at once, and a ``DryRun`` runs nothing.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import logging
import re
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from local_runtime import scope

log = logging.getLogger("local_runtime.lambda")

DEFAULT_INSTANCES_PER_FUNCTION: Final = 8
# Lambda's asynchronous invocation defaults (no EventInvokeConfig): 2 retries, 6 hours.
DEFAULT_MAX_RETRY_ATTEMPTS: Final = 2
DEFAULT_MAX_EVENT_AGE_SECONDS: Final = 21600


@dataclass(frozen=True)
class FunctionSpec:
    """One ``AWS::Lambda::Function`` of the template, resolved and mapped to local code."""

    logical_id: str
    function_name: str
    function_arn: str
    code_dir: Path | None
    handler: str
    runtime: str
    timeout_seconds: int
    memory_mb: int
    region: str
    environment: Mapping[str, str] = field(default_factory=dict)
    layer_dirs: tuple[Path, ...] = ()
    # Asynchronous invocation (``InvocationType="Event"``): the function's
    # ``DeadLetterConfig.TargetArn`` and its ``AWS::Lambda::EventInvokeConfig``.
    dead_letter_arn: str | None = None
    max_retry_attempts: int = DEFAULT_MAX_RETRY_ATTEMPTS
    max_event_age_seconds: int = DEFAULT_MAX_EVENT_AGE_SECONDS
    on_failure_arn: str | None = None

    def invocation_environment(self) -> dict[str, str]:
        """The function's variables plus the ones the Lambda runtime itself sets."""
        env = dict(self.environment)
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.function_name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[$LATEST]{self.logical_id}",
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{self.runtime}",
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "_HANDLER": self.handler,
                "LAMBDA_TASK_ROOT": str(self.code_dir or ""),
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
        )
        return env


@dataclass(frozen=True)
class FunctionError:
    """How Lambda reports a failed invocation: Step Functions matches Retry/Catch on the type."""

    error_type: str
    error_message: str
    stack_trace: tuple[str, ...] = ()

    def payload(self, request_id: str) -> dict[str, Any]:
        return {
            "errorMessage": self.error_message,
            "errorType": self.error_type,
            "requestId": request_id,
            "stackTrace": list(self.stack_trace),
        }


@dataclass(frozen=True)
class Invocation:
    """The outcome of one invocation; ``payload`` is the JSON-decoded response."""

    function_id: str
    request_id: str
    payload: Any
    payload_json: str
    error: FunctionError | None
    duration_ms: float

    @property
    def errored(self) -> bool:
        return self.error is not None


class LambdaContext:
    """The context object handed to a handler (what Powertools and most code read from it)."""

    def __init__(self, spec: FunctionSpec, request_id: str) -> None:
        self.function_name = spec.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.function_arn
        self.memory_limit_in_mb = spec.memory_mb
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{spec.function_name}"
        self.log_stream_name = f"local/[$LATEST]{spec.logical_id}"
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.monotonic() + spec.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _InitError(Exception):
    def __init__(self, error: FunctionError) -> None:
        super().__init__(error.error_message)
        self.error = error


@dataclass
class _Instance:
    package: str
    handler: Callable[[Any, Any], Any]


class _Pool:
    """Handler instances of one function: idle ones are reused, at most ``limit`` exist."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._idle: list[_Instance] = []
        self._size = 0
        self._serial = 0
        self._changed = threading.Condition()
        self.packages: list[str] = []

    def acquire(self, load: Callable[[int], _Instance]) -> _Instance:
        with self._changed:
            while not self._idle and self._size >= self._limit:
                self._changed.wait()
            if self._idle:
                return self._idle.pop()
            self._size += 1
            self._serial += 1
            serial = self._serial
        try:
            instance = load(serial)
        except BaseException:
            with self._changed:
                self._size -= 1
                self._changed.notify()
            raise
        with self._changed:
            self.packages.append(instance.package)
        return instance

    def release(self, instance: _Instance) -> None:
        with self._changed:
            self._idle.append(instance)
            self._changed.notify()


def _traceback_lines(exc: BaseException) -> tuple[str, ...]:
    return tuple(line.rstrip("\n") for line in traceback.format_tb(exc.__traceback__))


class LambdaHost:
    """Registry of the template's functions and the shared entry point that invokes them."""

    def __init__(
        self,
        specs: Iterable[FunctionSpec],
        instances_per_function: int = DEFAULT_INSTANCES_PER_FUNCTION,
    ) -> None:
        self.specs: dict[str, FunctionSpec] = {spec.logical_id: spec for spec in specs}
        self._by_name: dict[str, str] = {}
        for spec in self.specs.values():
            self._by_name[spec.function_name] = spec.logical_id
            self._by_name[spec.function_arn] = spec.logical_id
        self._environments = {
            logical_id: spec.invocation_environment() for logical_id, spec in self.specs.items()
        }
        self._pools = {logical_id: _Pool(instances_per_function) for logical_id in self.specs}
        self._stats_lock = threading.Lock()
        self._invocations: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._layer_dirs = sorted({str(d) for spec in self.specs.values() for d in spec.layer_dirs})
        self._added_paths: list[str] = []
        self._saved_layer_modules: dict[str, Any] = {}

    def activate(self) -> None:
        """Put the layers on ``sys.path`` and give this host its own fresh copy of their modules.

        Every start is then a cold start, as after a deployment: module-level caches in the
        layer (boto3 clients bound to an endpoint, cached secrets) never leak from an earlier
        runtime or from tests in the same process. :meth:`unload` puts the old modules back.
        """
        for layer_dir in self._layer_dirs:
            if layer_dir not in sys.path:
                sys.path.append(layer_dir)
                self._added_paths.append(layer_dir)
        self._saved_layer_modules = _pop_modules_under(self._layer_dirs)

    def function_id(self, name_or_arn: str) -> str | None:
        """The logical id of a function given its physical name or ARN (qualifier ignored)."""
        found = self._by_name.get(name_or_arn)
        if found is None and name_or_arn.count(":") == 7:
            found = self._by_name.get(name_or_arn.rsplit(":", 1)[0])
        return found

    def stats(self) -> dict[str, dict[str, int]]:
        """``{logical_id: {"invocations": n, "errors": m}}`` since start."""
        with self._stats_lock:
            return {
                logical_id: {
                    "invocations": self._invocations[logical_id],
                    "errors": self._errors[logical_id],
                }
                for logical_id in self.specs
            }

    # -- loading --------------------------------------------------------------------------

    def _load(self, spec: FunctionSpec, serial: int) -> _Instance:
        """Import a fresh copy of the handler module (runs the module's init code)."""
        module_path, _, attribute = spec.handler.rpartition(".")
        if spec.code_dir is None or not module_path:
            raise _InitError(
                FunctionError(
                    "Runtime.InvalidEntrypoint",
                    f"{spec.logical_id} has no local code or handler {spec.handler!r}",
                )
            )
        safe_id = re.sub(r"\W", "_", spec.logical_id)
        package = f"_paycore_local_fn_{safe_id}_{serial}"
        package_spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
        package_spec.submodule_search_locations = [str(spec.code_dir)]
        sys.modules[package] = importlib.util.module_from_spec(package_spec)
        module_name = module_path.replace("/", ".")
        try:
            module = importlib.import_module(f"{package}.{module_name}")
        except Exception as exc:
            _unload([package])
            raise _InitError(
                FunctionError(
                    "Runtime.ImportModuleError",
                    f"Unable to import module '{module_name}': {exc}",
                    _traceback_lines(exc),
                )
            ) from exc
        handler = getattr(module, attribute, None)
        if not callable(handler):
            _unload([package])
            raise _InitError(
                FunctionError(
                    "Runtime.HandlerNotFound",
                    f"Handler '{attribute}' missing on module '{module_name}'",
                )
            )
        log.debug("loaded %s instance %d from %s", spec.logical_id, serial, spec.code_dir)
        return _Instance(package, handler)

    def unload(self) -> None:
        """Forget the handler and layer modules imported by this host (the runtime stopped)."""
        for pool in self._pools.values():
            _unload(pool.packages)
        _pop_modules_under(self._layer_dirs)
        sys.modules.update(self._saved_layer_modules)
        self._saved_layer_modules = {}
        for layer_dir in self._added_paths:
            if layer_dir in sys.path:
                sys.path.remove(layer_dir)
        self._added_paths.clear()

    # -- invoking -------------------------------------------------------------------------

    def invoke(
        self,
        function_id: str,
        event: Any,
        source: str = "invoke",
        *,
        request_id: str | None = None,
    ) -> Invocation:
        """Invoke a function by logical id with ``event``; never raises for handler errors.

        ``request_id``: the invocation's id (an asynchronous event keeps one across retries);
        a new one by default.
        """
        spec = self.specs.get(function_id)
        if spec is None:
            raise KeyError(f"no function {function_id!r} in the template")
        request_id = request_id or str(uuid.uuid4())
        started = time.perf_counter()
        error: FunctionError | None = None
        result: Any = None
        exception: BaseException | None = None
        pool = self._pools[function_id]
        with scope.enter(function_id, self._environments[function_id]):
            try:
                instance = pool.acquire(lambda serial: self._load(spec, serial))
            except _InitError as init_error:
                error = init_error.error
                exception = init_error.__cause__
            else:
                try:
                    result = instance.handler(event, LambdaContext(spec, request_id))
                except (Exception, SystemExit) as exc:
                    exception = exc
                    error = FunctionError(type(exc).__name__, str(exc), _traceback_lines(exc))
                finally:
                    pool.release(instance)
        payload_json = ""
        if error is None:
            try:
                payload_json = json.dumps(result)
            except (TypeError, ValueError) as exc:
                error = FunctionError("Runtime.MarshalError", f"Unable to marshal response: {exc}")
        if error is not None:
            payload_json = json.dumps(error.payload(request_id))
        duration_ms = (time.perf_counter() - started) * 1000
        self._record(function_id, error, exception, source, duration_ms)
        return Invocation(
            function_id=function_id,
            request_id=request_id,
            payload=json.loads(payload_json) if payload_json else None,
            payload_json=payload_json,
            error=error,
            duration_ms=duration_ms,
        )

    def _record(
        self,
        function_id: str,
        error: FunctionError | None,
        exception: BaseException | None,
        source: str,
        duration_ms: float,
    ) -> None:
        with self._stats_lock:
            self._invocations[function_id] += 1
            if error is not None:
                self._errors[function_id] += 1
        if error is None:
            log.debug("%s <- %s ok (%.0f ms)", function_id, source, duration_ms)
            return
        # Domain exceptions (ChannelRejected, an authorizer's Exception("Unauthorized")) are
        # signals a caller handles: one line. A builtin error (KeyError, TypeError...) or an
        # init failure is a bug: a warning with the traceback.
        is_bug = error.error_type.startswith("Runtime.") or (
            exception is not None
            and type(exception).__module__ == "builtins"
            and type(exception) is not Exception
        )
        log.log(
            logging.WARNING if is_bug else logging.INFO,
            "%s <- %s raised %s: %s (%.0f ms)",
            function_id,
            source,
            error.error_type,
            error.error_message,
            duration_ms,
            exc_info=exception if is_bug and exception is not None else None,
        )


def _unload(packages: Iterable[str]) -> None:
    prefixes = tuple(packages)
    if not prefixes:
        return
    dotted = tuple(f"{prefix}." for prefix in prefixes)
    for name in [name for name in sys.modules if name in prefixes or name.startswith(dotted)]:
        sys.modules.pop(name, None)


def _module_dirs(module: Any) -> list[str]:
    locations = [getattr(module, "__file__", None) or ""]
    locations += list(getattr(module, "__path__", None) or [])
    return [str(location) for location in locations if location]


def _pop_modules_under(directories: Iterable[str]) -> dict[str, Any]:
    """Remove (and return) the modules loaded from files under ``directories``."""
    prefixes = tuple(str(Path(d).resolve()) + "/" for d in directories)
    if not prefixes:
        return {}
    popped = {
        name: module
        for name, module in list(sys.modules.items())
        if any(location.startswith(prefixes) for location in _module_dirs(module))
    }
    for name in popped:
        sys.modules.pop(name, None)
    return popped


# -- the moto hook ------------------------------------------------------------------------


class EventInvoke(Protocol):
    """Queues an asynchronous event; returns its request id at once."""

    def __call__(
        self, function_id: str, event: Any, source: str = ..., *, raw: str | None = ...
    ) -> str: ...


_hook_lock = threading.Lock()
_active_host: LambdaHost | None = None
_active_event_invoke: EventInvoke | None = None
_original_invoke_lambda: Callable[..., Any] | None = None
_original_function_invoke: Callable[..., Any] | None = None


def _decode_event(event: Any) -> Any:
    if event is None or event == "{}":
        return {}
    if isinstance(event, bytes):
        event = event.decode("utf-8")
    if isinstance(event, str):
        if not event:
            return {}
        try:
            return json.loads(event)
        except ValueError:
            return event
    return event


def _hooked_invoke_lambda(function: Any, event: Any = None) -> tuple[str, bool, str]:
    """Replacement for ``moto.awslambda.models.LambdaFunction._invoke_lambda``."""
    host = _active_host
    function_id = host.function_id(function.function_name) if host is not None else None
    if host is None or function_id is None:
        error = FunctionError(
            "Runtime.InvalidEntrypoint",
            f"function {function.function_name} is not part of the local template",
        )
        return json.dumps(error.payload(str(uuid.uuid4()))), True, ""
    invocation = host.invoke(function_id, _decode_event(event), source="lambda:Invoke")
    return invocation.payload_json, invocation.errored, ""


def _hooked_function_invoke(
    function: Any, body: Any, request_headers: Any, response_headers: Any
) -> str | bytes:
    """Replacement for ``moto.awslambda.models.LambdaFunction.invoke`` (the Invoke API), the
    level that sees the invocation type: ``Event`` is queued and answered at once (moto's
    responses.py turns the empty payload into 202), ``DryRun`` runs nothing (204), anything
    else runs synchronously through ``_invoke_lambda``."""
    invocation_type = request_headers.get("x-amz-invocation-type", "RequestResponse")
    if invocation_type == "DryRun":
        return ""
    host, event_invoke = _active_host, _active_event_invoke
    function_id = host.function_id(function.function_name) if host is not None else None
    if invocation_type != "Event" or event_invoke is None or function_id is None:
        assert _original_function_invoke is not None
        result: str | bytes = _original_function_invoke(
            function, body, request_headers, response_headers
        )
        return result
    raw = body.decode("utf-8") if isinstance(body, bytes) else body
    event_invoke(function_id, _decode_event(body), "lambda:Invoke", raw=raw or "{}")
    return ""


def install_moto_hook(host: LambdaHost, event_invoke: EventInvoke | None = None) -> None:
    """Make moto run ``host``'s Python handlers for every Lambda invoke.

    ``event_invoke`` queues an ``InvocationType="Event"`` invoke (see
    :mod:`local_runtime.async_invoke`); without it such an invoke runs synchronously.
    """
    global _active_host, _active_event_invoke  # noqa: PLW0603 - process-wide patch
    global _original_invoke_lambda, _original_function_invoke  # noqa: PLW0603
    from moto.awslambda.models import LambdaFunction

    with _hook_lock:
        if _original_invoke_lambda is None:
            _original_invoke_lambda = LambdaFunction._invoke_lambda
            LambdaFunction._invoke_lambda = _hooked_invoke_lambda
        if _original_function_invoke is None:
            _original_function_invoke = LambdaFunction.invoke
            LambdaFunction.invoke = _hooked_function_invoke
        _active_host = host
        _active_event_invoke = event_invoke


def uninstall_moto_hook() -> None:
    global _active_host, _active_event_invoke  # noqa: PLW0603 - process-wide patch
    global _original_invoke_lambda, _original_function_invoke  # noqa: PLW0603
    from moto.awslambda.models import LambdaFunction

    with _hook_lock:
        if _original_invoke_lambda is not None:
            LambdaFunction._invoke_lambda = _original_invoke_lambda
            _original_invoke_lambda = None
        if _original_function_invoke is not None:
            LambdaFunction.invoke = _original_function_invoke
            _original_function_invoke = None
        _active_host = None
        _active_event_invoke = None
