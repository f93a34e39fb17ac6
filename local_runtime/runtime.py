"""LocalRuntime: serve a SAM template's whole backend in this process, on moto.

Start-up, in order: bind the API port (so its URL is known), start moto and switch on Step
Functions execution, start the sandbox channel (if its package is present), transform the
template with the local profile's parameters, provision every resource, fill the channel
account secrets from the local channel services, then serve: the API, one SQS poller per queue
event source, one timer per schedule. ``stop()`` undoes all of it.

moto's backends and the hooks installed here are process-wide, so one runtime runs per
process at a time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from local_runtime import accounting, dynamodb_transactions, lambdas, moto_server, scope
from local_runtime.accounting import SdkCallCounter
from local_runtime.apigateway import ApiServer, RestApiGateway
from local_runtime.async_invoke import AsyncInvoker
from local_runtime.channel_services import (
    ChannelService,
    SandboxAccounts,
    channel_accounts,
    fill_account_secrets,
)
from local_runtime.lambdas import Invocation, LambdaHost
from local_runtime.pollers import ScheduleRunner, SqsPoller
from local_runtime.profile import PORT_VARIABLES, LocalProfile
from local_runtime.provision import Provisioner, Stack
from local_runtime.resolver import ACCOUNT_ID
from local_runtime.template import transform_template

log = logging.getLogger("local_runtime")

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

_active_lock = threading.Lock()
_active: LocalRuntime | None = None


class PortInUseError(OSError):
    """A port the runtime needs is taken; the message says which variable moves it."""

    def __init__(self, port: int, variable: str) -> None:
        super().__init__(f"port {port} is already in use; set {variable}=<another port>")
        self.port = port
        self.variable = variable


def port_available(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (port 0 is always available)."""
    if port == 0:
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def busy_ports(profile: LocalProfile) -> list[PortInUseError]:
    """One error per configured port that is already taken."""
    return [
        PortInUseError(getattr(profile, field), variable)
        for field, variable in PORT_VARIABLES.items()
        if not port_available(profile.host, getattr(profile, field))
    ]


def quiet_noisy_loggers() -> None:
    """moto's ASL interpreter dumps whole states on failures; werkzeug logs every request.

    A logger whose level was already set (``python -m local_runtime -v``) is left alone.
    """
    levels = {
        "moto.stepfunctions.parser": logging.CRITICAL,
        "werkzeug": logging.ERROR,
        "samtranslator": logging.WARNING,
    }
    for name, level in levels.items():
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(level)


class LocalRuntime:
    """The whole backend of ``template_path`` on one machine: ``start()``/``stop()`` or ``with``.

    Ports of 0 in the profile pick free ports (tests, benchmarks); the chosen URLs are on
    :attr:`api_url`, :attr:`moto_endpoint` and :attr:`sandbox_url`.
    """

    def __init__(
        self,
        template_path: str | Path = DEFAULT_TEMPLATE,
        profile: LocalProfile | None = None,
        *,
        start_sandbox: bool = True,
    ) -> None:
        self.template_path = Path(template_path)
        self.profile = profile or LocalProfile.from_env()
        self.start_sandbox = start_sandbox
        self.sdk_calls = SdkCallCounter()
        self.sandbox_error: str | None = None
        # The channel accounts whose secrets a local channel service filled (ids).
        self.channel_accounts_filled: list[str] = []
        self.started_in_seconds = 0.0
        self._stack: Stack | None = None
        self._host: LambdaHost | None = None
        self._async: AsyncInvoker | None = None
        self._api: ApiServer | None = None
        self._gateway: RestApiGateway | None = None
        self._moto: moto_server.MotoServer | None = None
        self._sandbox: Any = None
        # The real channels' simulators, by channel, started for the accounts routing names.
        self._simulators: dict[str, Any] = {}
        self._pollers: list[SqsPoller] = []
        self._schedules: dict[str, ScheduleRunner] = {}
        self._saved_env: dict[str, str | None] = {}
        self._saved_sfn_config: Any = None
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._hooks: list[str] = []
        self._running = False

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> LocalRuntime:
        """Start everything; returns once the API answers. Raises PortInUseError, TemplateError."""
        global _active  # noqa: PLW0603 - one runtime per process
        with _active_lock:
            if _active is not None:
                raise RuntimeError(
                    "a LocalRuntime is already running in this process (moto's state and the "
                    "hooks are process-wide); stop it first, e.g. scope a pytest fixture that "
                    "starts one to its module or package rather than the session"
                )
            _active = self
        self._running = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        started = time.perf_counter()
        quiet_noisy_loggers()
        self._start_servers()
        self._install_hooks()
        self._start_sandbox()
        stack = self._provision()
        self._fill_channel_secrets(stack)
        self._start_serving(stack)
        self.started_in_seconds = time.perf_counter() - started
        log.info(
            "provisioned %d resources in %.2f s; ready in %.2f s",
            sum(1 for r in stack.resources.values() if r.created),
            stack.seconds,
            self.started_in_seconds,
        )

    def _start_servers(self) -> None:
        """Bind the API port (its URL is a template parameter) and start moto."""
        profile = self.profile
        if not port_available(profile.host, profile.moto_port):
            raise PortInUseError(profile.moto_port, PORT_VARIABLES["moto_port"])
        try:
            self._api = ApiServer(profile.host, profile.api_port)
        except OSError:
            raise PortInUseError(profile.api_port, PORT_VARIABLES["api_port"]) from None
        self._moto = moto_server.MotoServer(profile.host, profile.moto_port, verbose=False)
        try:
            self._moto.start()
        except OSError:
            self._moto = None
            raise PortInUseError(profile.moto_port, PORT_VARIABLES["moto_port"]) from None
        self._set_process_env()
        self._saved_sfn_config = moto_server.get_config(self.moto_endpoint).get("stepfunctions")
        moto_server.moto_api(self.moto_endpoint, "reset")
        # Before any state machine exists: it selects the backend that executes them.
        moto_server.moto_api(
            self.moto_endpoint, "config", {"stepfunctions": {"execute_state_machine": True}}
        )

    def _provision(self) -> Stack:
        """Transform the template with the local profile and create its resources in moto."""
        import boto3

        profile = self.profile
        template = transform_template(
            self.template_path,
            profile.parameter_overrides(self.api_url),
            region=profile.region,
        )
        self._session = boto3.session.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=profile.region,
        )
        provisioner = Provisioner(
            template, self._session, self.moto_endpoint, profile.region, profile.secret_values()
        )
        self._stack = provisioner.provision()
        return self._stack

    def _fill_channel_secrets(self, stack: Stack) -> None:
        """Write the credentials of every account a local channel service serves into the
        secret the functions read (``CHANNEL_SECRET_PREFIX`` + account id), before serving."""
        environment = next(
            (
                spec.environment
                for spec in stack.functions.values()
                if "CHANNEL_SECRET_PREFIX" in spec.environment
            ),
            None,
        )
        if environment is None:  # a template without channel accounts
            return
        routed = {
            str(account.get("id")): str(account.get("channel"))
            for account in channel_accounts(environment.get("CHANNEL_ACCOUNTS", ""))
        }
        self._start_simulators(routed)
        self.channel_accounts_filled = fill_account_secrets(
            self.client("secretsmanager"),
            environment["CHANNEL_SECRET_PREFIX"],
            self._channel_services(routed),
            routed,
        )
        missing = sorted(set(routed) - set(self.channel_accounts_filled))
        if missing:
            log.info("channel accounts without a local service (not configured): %s", missing)

    def _start_simulators(self, routed: dict[str, str]) -> None:
        """Start the simulator of every real channel routing names an account of, serving
        those accounts (fresh keys each run); Stripe's events go to each account's callback
        route, which Stripe knows from its dashboard rather than from each request, and only
        the types paycore subscribes to (``WEBHOOK_EVENTS``)."""
        from local_runtime.simulators import SIMULATORS

        for channel, factory in SIMULATORS.items():
            accounts = [account for account, named in routed.items() if named == channel]
            if not accounts or channel in self._simulators:
                continue
            port = self.profile.simulator_port(channel)
            if not port_available(self.profile.host, port):
                raise PortInUseError(port, PORT_VARIABLES[f"{channel}_port"])
            simulator = factory(
                self.profile.host,
                port,
                accounts=accounts,
                notify_schedule=self.profile.simulator_notify_schedule,
            )
            simulator.start()
            self._simulators[channel] = simulator
            if channel == "stripe":  # registered as docs/channels.md tells operators to
                from paycore.channels.stripe.transformers import WEBHOOK_EVENTS

                for account in accounts:
                    simulator.set_webhook_url(
                        account,
                        f"{self.api_url}/callbacks/{channel}/{account}",
                        enabled_events=WEBHOOK_EVENTS,
                    )

    def _channel_services(self, routed: dict[str, str]) -> list[ChannelService]:
        """The local channel services running now, each listing the accounts it serves."""
        services: list[ChannelService] = list(self._simulators.values())
        if self._sandbox is not None:
            sandbox_accounts = [
                account for account, channel in routed.items() if channel == "sandbox"
            ]
            services.append(
                SandboxAccounts(self._sandbox, self.profile.sandbox_secret, sandbox_accounts)
            )
        return services

    def _start_serving(self, stack: Stack) -> None:
        """Load the functions, then serve the API, poll the queues and run the schedules."""
        profile = self.profile
        self._host = host = LambdaHost(stack.functions.values(), profile.instances_per_function)
        host.activate()
        self._async = AsyncInvoker(
            host,
            self._send_dead_letter,
            retry_delays=profile.async_retry_delays,
            concurrency=profile.instances_per_function,
        )
        lambdas.install_moto_hook(host, self._async.submit)
        self._hooks.append("lambda")
        self._gateway = RestApiGateway(
            stack.rest_apis, host.invoke, host.function_id, profile.region, ACCOUNT_ID
        )
        self._pollers = [
            SqsPoller(
                source,
                self.client("sqs"),
                host.invoke,
                profile.region,
                concurrency=profile.sqs_pollers_per_source,
            )
            for source in stack.sqs_sources
            if source.enabled
        ]
        self._schedules = {
            spec.logical_id: ScheduleRunner(
                spec,
                host.invoke,
                profile.region,
                ACCOUNT_ID,
                time_scale=profile.schedule_time_scale,
            )
            for spec in stack.schedules
        }
        assert self._api is not None
        self._api.start(self._gateway)
        for poller in self._pollers:
            poller.start()
        for runner in self._schedules.values():
            if runner.spec.enabled:
                runner.start()

    def _send_dead_letter(self, queue_arn: str, body: str, attributes: dict[str, Any]) -> None:
        """Send a failed asynchronous event to an SQS queue of the stack (as ``@runtime``)."""
        queue_url = self.stack.queue_urls.get(queue_arn)
        if queue_url is None:
            raise ValueError(f"{queue_arn} is not a queue of the template")
        request: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": body}
        if attributes:
            request["MessageAttributes"] = attributes
        self.client("sqs").send_message(**request)

    def _set_process_env(self) -> None:
        """Point every boto3 client of this process (the handlers' too) at moto."""
        values = {
            **FAKE_CREDENTIALS,
            "AWS_DEFAULT_REGION": self.profile.region,
            "AWS_REGION": self.profile.region,
            "AWS_ENDPOINT_URL": self.moto_endpoint,
            # The ASL interpreter calls Lambda and SDK tasks on localhost:$MOTO_PORT.
            "MOTO_PORT": str(self.moto_port),
        }
        for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ.pop(name, None)
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _restore_process_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    def _install_hooks(self) -> None:
        scope.install_environ_overlay()
        self._hooks.append("environ")
        accounting.install_counter(self.sdk_calls)
        self._hooks.append("counter")
        moto_server.install_interpreter_client_cache()
        self._hooks.append("interpreter")
        dynamodb_transactions.install()
        self._hooks.append("dynamodb")

    def _start_sandbox(self) -> None:
        if not self.start_sandbox:
            self.sandbox_error = "disabled"
            return
        try:
            from local_runtime.sandbox.server import SandboxServer
        except ImportError as exc:
            self.sandbox_error = f"local_runtime.sandbox is not available ({exc})"
            log.warning("sandbox channel not started: %s", self.sandbox_error)
            return
        port = self.profile.sandbox_port
        if not port_available(self.profile.host, port):
            raise PortInUseError(port, PORT_VARIABLES["sandbox_port"])
        self._sandbox = SandboxServer(
            self.profile.host,
            port,
            secret=self.profile.sandbox_secret,
            notify_schedule=self.profile.sandbox_notify_schedule,
        )
        self._sandbox.start()

    def stop(self) -> None:
        """Stop everything this runtime started (idempotent; safe after a failed start)."""
        global _active  # noqa: PLW0603 - one runtime per process
        if not self._running:
            return
        self._running = False
        self._stop_services()
        self._stop_moto()
        self._uninstall_hooks()
        if self._host is not None:
            self._host.unload()
        with _active_lock:
            if _active is self:
                _active = None

    def _stop_services(self) -> None:
        for runner in self._schedules.values():
            runner.signal_stop()
        for poller in self._pollers:
            poller.signal_stop()
        self._quietly("API server", self._api.stop if self._api else None)
        # Queued and delayed asynchronous events are abandoned; running ones get a moment to
        # finish while moto still answers.
        self._quietly("asynchronous invokes", self._async.stop if self._async else None)
        self._quietly("sandbox", self._sandbox.stop if self._sandbox is not None else None)
        for channel, simulator in self._simulators.items():
            self._quietly(f"{channel} simulator", simulator.stop)
        if self._stack is not None and self._moto is not None:
            arns = [r.ref for r in self._stack.of_type("AWS::StepFunctions::StateMachine")]
            self._quietly(
                "executions",
                lambda: moto_server.stop_running_executions(self.client("stepfunctions"), arns),
            )

    def _stop_moto(self) -> None:
        if self._moto is not None:
            endpoint = self.moto_endpoint
            config = {"stepfunctions": self._saved_sfn_config or {"execute_state_machine": False}}
            self._quietly("moto config", lambda: moto_server.moto_api(endpoint, "config", config))
            self._quietly("moto reset", lambda: moto_server.moto_api(endpoint, "reset"))
            self._quietly("moto server", self._moto.stop)
        # A poller blocked in its (20 s) long poll finds the stop flag when the poll returns;
        # its daemon thread is not waited for, so stop() stays fast (see SqsPoller).
        for poller in self._pollers:
            poller.join(0.1)
        for runner in self._schedules.values():
            runner.join(1.0)

    def _uninstall_hooks(self) -> None:
        if "lambda" in self._hooks:
            lambdas.uninstall_moto_hook()
        if "interpreter" in self._hooks:
            moto_server.uninstall_interpreter_client_cache()
        if "dynamodb" in self._hooks:
            dynamodb_transactions.uninstall()
        if "counter" in self._hooks:
            accounting.uninstall_counter()
        self._restore_process_env()
        if "environ" in self._hooks:
            scope.uninstall_environ_overlay()
        self._hooks.clear()

    @staticmethod
    def _quietly(what: str, action: Any) -> None:
        if action is None:
            return
        try:
            action()
        except Exception as exc:
            log.debug("stopping %s: %s", what, exc)

    # -- what tests, the CLI and the benchmark read ---------------------------------------

    @property
    def api_url(self) -> str:
        assert self._api is not None, "start() first"
        return self._api.url

    @property
    def api_port(self) -> int:
        assert self._api is not None, "start() first"
        return self._api.port

    @property
    def moto_port(self) -> int:
        assert self._moto is not None, "start() first"
        return self._moto.port

    @property
    def moto_endpoint(self) -> str:
        return f"http://{self.profile.host}:{self.moto_port}"

    @property
    def sandbox_url(self) -> str | None:
        return str(self._sandbox.url) if self._sandbox is not None else None

    @property
    def simulator_urls(self) -> dict[str, str]:
        """The running channel simulators' base URLs, by channel."""
        return {channel: str(sim.url) for channel, sim in self._simulators.items()}

    @property
    def admin_token(self) -> str:
        return self.profile.admin_token

    @property
    def region(self) -> str:
        return self.profile.region

    @property
    def stack(self) -> Stack:
        assert self._stack is not None, "start() first"
        return self._stack

    @property
    def gateway(self) -> RestApiGateway:
        """The API Gateway emulation (its ``routes`` come from the template)."""
        assert self._gateway is not None, "start() first"
        return self._gateway

    @property
    def lambdas(self) -> LambdaHost:
        assert self._host is not None, "start() first"
        return self._host

    def physical_id(self, logical_id: str) -> Any:
        """The Ref value of a template resource (table name, queue URL, ARN...)."""
        return self.stack.physical_id(logical_id)

    def outputs(self) -> dict[str, Any]:
        return self.stack.outputs()

    def client(self, service: str) -> Any:
        """A boto3 client for moto (cached; its calls count as ``@runtime``)."""
        if service not in self._clients:
            assert self._session is not None, "start() first"
            self._clients[service] = accounting.tag_client(
                self._session.client(service, endpoint_url=self.moto_endpoint),
                accounting.RUNTIME,
            )
        return self._clients[service]

    def invoke(self, function_id: str, event: Any) -> Invocation:
        """Invoke a function of the template by logical id, in-process."""
        return self.lambdas.invoke(function_id, event, source="runtime.invoke")

    @property
    def async_invoker(self) -> AsyncInvoker:
        """The queue of asynchronous (``InvocationType="Event"``) invokes."""
        assert self._async is not None, "start() first"
        return self._async

    def invoke_async(self, function_id: str, event: Any) -> str:
        """Queue an asynchronous invoke of a function, as ``InvocationType="Event"`` does
        (retries, dead-letter queue); returns its request id."""
        return self.async_invoker.submit(function_id, event, "runtime.invoke_async")

    def wait_for_async_invokes(self, timeout: float = 30.0) -> bool:
        """Wait until every asynchronous invoke has finished, retries included."""
        return self.async_invoker.wait_idle(timeout)

    def trigger_schedule(self, logical_id: str) -> Invocation:
        """Fire a schedule now, as its timer would."""
        return self._schedules[logical_id].fire()

    def schedule_fire_count(self, logical_id: str) -> int:
        return self._schedules[logical_id].fired

    def sdk_call_snapshot(self) -> dict[str, dict[str, int]]:
        """``{caller: {"service:Operation": n}}``.

        Callers are function logical ids, ``@stepfunctions`` (the ASL interpreter) and
        ``@runtime`` (provisioning, pollers, this object's clients).
        """
        return self.sdk_calls.snapshot()

    def reset_sdk_calls(self) -> None:
        self.sdk_calls.reset()

    def write_units(self) -> dict[str, dict[str, int]]:
        """DynamoDB write units by caller: ``{caller: {"table": n, "index": n}}`` (counted
        by item from the requests; see ``local_runtime.accounting.write_units``)."""
        return self.sdk_calls.write_units()

    def largest_transactions(self) -> dict[str, int]:
        """The most items one ``TransactWriteItems`` held, by caller, since the last reset."""
        return self.sdk_calls.largest_transactions()

    def state_transitions(self, execution_arn: str) -> int:
        """Billed state transitions of an execution (its StateEntered events)."""
        stepfunctions = self.client("stepfunctions")
        return accounting.count_state_transitions(stepfunctions, execution_arn)

    def wait_for_execution(self, execution_arn: str, timeout: float = 30.0) -> dict[str, Any]:
        """Describe an execution once it has finished (or when ``timeout`` runs out)."""
        stepfunctions = self.client("stepfunctions")
        return moto_server.wait_for_execution(stepfunctions, execution_arn, timeout)
