"""The local profile: what differs when template.yaml runs on a laptop instead of in AWS.

Only *values* live here — template parameter overrides (short waits and retry schedules so
that timeouts, retries and the dead-letter queue can be watched locally), secret values and
ports. What exists (tables, queues, functions, routes) always comes from the template.
Overrides of parameters a template does not declare are ignored, so the same profile works
for small test templates.

Environment variables (all optional):

=====================================  ===================================================
``PAYCORE_PORT``                        API port (3000)
``PAYCORE_MOTO_PORT``                   moto server port (5000)
``PAYCORE_SANDBOX_PORT``                sandbox channel port (3100)
``PAYCORE_ALIPAY_PORT``                 Alipay simulator port (3101)
``PAYCORE_WECHATPAY_PORT``              WeChat Pay simulator port (3102)
``PAYCORE_STRIPE_PORT``                 Stripe simulator port (3103)
``PAYCORE_ADMIN_TOKEN``                 platform admin token (generated when unset)
``PAYCORE_STAGE_NAME``                  ``StageName`` (local)
``PAYCORE_CALLBACK_WAIT_SECONDS``       ``CallbackWaitSeconds`` (30)
``PAYCORE_CHANNEL_QUERY_INTERVAL_SECONDS``  ``ChannelQueryIntervalSeconds`` (2)
``PAYCORE_WEBHOOK_RETRY_SCHEDULE``      ``WebhookRetrySchedule`` (1,1,2,2,3)
``PAYCORE_WEBHOOK_MAX_ATTEMPTS``        ``WebhookMaxAttempts`` (6)
``PAYCORE_LOG_LEVEL``                   ``LogLevel`` of the functions (template default)
``PAYCORE_SANDBOX_NOTIFY_SCHEDULE``     sandbox notification delays, seconds (0.2,1,2,4)
``PAYCORE_SIMULATOR_NOTIFY_SCHEDULE``   the channel simulators' notification delays (0.2,1,2,4)
``PAYCORE_CHANNEL_TIMEOUT_SECONDS``     ``ChannelTimeoutSeconds`` (5)
``PAYCORE_CHANNEL_ACCOUNTS``            ``ChannelAccounts`` JSON (template default)
``PAYCORE_ASYNC_RETRY_DELAYS``          delays before an async invoke's retries, s (1,2)
=====================================  ===================================================
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_API_PORT = 3000
DEFAULT_MOTO_PORT = 5000
DEFAULT_SANDBOX_PORT = 3100
# The real channels' local simulators (local_runtime/simulators), each on its own port.
DEFAULT_SIMULATOR_PORTS = {"alipay": 3101, "wechatpay": 3102, "stripe": 3103}

# Which environment variable sets which port (for the "port in use" message).
PORT_VARIABLES = {
    "api_port": "PAYCORE_PORT",
    "moto_port": "PAYCORE_MOTO_PORT",
    "sandbox_port": "PAYCORE_SANDBOX_PORT",
    "alipay_port": "PAYCORE_ALIPAY_PORT",
    "wechatpay_port": "PAYCORE_WECHATPAY_PORT",
    "stripe_port": "PAYCORE_STRIPE_PORT",
}


def generate_token() -> str:
    """A random alphanumeric token (48 characters, like the template's generated secrets)."""
    return secrets.token_hex(24)


@dataclass(frozen=True)
class LocalProfile:
    """Ports, template parameter overrides and secret values for a local run."""

    host: str = "127.0.0.1"
    api_port: int = DEFAULT_API_PORT
    moto_port: int = DEFAULT_MOTO_PORT
    sandbox_port: int = DEFAULT_SANDBOX_PORT
    alipay_port: int = DEFAULT_SIMULATOR_PORTS["alipay"]
    wechatpay_port: int = DEFAULT_SIMULATOR_PORTS["wechatpay"]
    stripe_port: int = DEFAULT_SIMULATOR_PORTS["stripe"]
    region: str = "us-east-1"
    admin_token: str = dataclasses.field(default_factory=generate_token)
    admin_token_generated: bool = True
    # The sandbox's shared secret: its accounts' secrets carry it (generated per run).
    sandbox_secret: str = dataclasses.field(default_factory=generate_token)
    stage_name: str = "local"
    callback_wait_seconds: int = 30
    channel_query_interval_seconds: int = 2
    webhook_retry_schedule: str = "1,1,2,2,3"
    webhook_max_attempts: int = 6
    function_log_level: str | None = None
    sandbox_notify_schedule: tuple[float, ...] = (0.2, 1.0, 2.0, 4.0)
    # The simulators' notification retries, compressed like the sandbox's (each simulator
    # also knows its channel's real schedule, hours long).
    simulator_notify_schedule: tuple[float, ...] = (0.2, 1.0, 2.0, 4.0)
    channel_timeout_seconds: float = 5.0
    channel_accounts: str | None = None  # None: the template's default accounts
    # Runtime knobs (not template parameters).
    sqs_pollers_per_source: int = 2
    instances_per_function: int = 8
    schedule_time_scale: float = 1.0
    # Before the 1st and 2nd retry of a failed asynchronous invoke (Lambda: ~60 s, ~120 s).
    async_retry_delays: tuple[float, ...] = (1.0, 2.0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> LocalProfile:
        """The profile for ``environ`` (default: the process environment), then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}

        def number(name: str, field_name: str, kind: type = int) -> None:
            if env.get(name):
                try:
                    values[field_name] = kind(env[name])
                except ValueError:
                    raise ValueError(f"{name}={env[name]!r} is not a {kind.__name__}") from None

        number("PAYCORE_PORT", "api_port")
        number("PAYCORE_MOTO_PORT", "moto_port")
        number("PAYCORE_SANDBOX_PORT", "sandbox_port")
        for channel in DEFAULT_SIMULATOR_PORTS:
            number(PORT_VARIABLES[f"{channel}_port"], f"{channel}_port")
        number("PAYCORE_CALLBACK_WAIT_SECONDS", "callback_wait_seconds")
        number("PAYCORE_CHANNEL_QUERY_INTERVAL_SECONDS", "channel_query_interval_seconds")
        number("PAYCORE_WEBHOOK_MAX_ATTEMPTS", "webhook_max_attempts")
        number("PAYCORE_CHANNEL_TIMEOUT_SECONDS", "channel_timeout_seconds", float)
        if env.get("PAYCORE_CHANNEL_ACCOUNTS"):
            values["channel_accounts"] = env["PAYCORE_CHANNEL_ACCOUNTS"]
        if env.get("PAYCORE_ADMIN_TOKEN"):
            values["admin_token"] = env["PAYCORE_ADMIN_TOKEN"]
            values["admin_token_generated"] = False
        if env.get("PAYCORE_STAGE_NAME"):
            values["stage_name"] = env["PAYCORE_STAGE_NAME"]
        if env.get("PAYCORE_WEBHOOK_RETRY_SCHEDULE"):
            values["webhook_retry_schedule"] = env["PAYCORE_WEBHOOK_RETRY_SCHEDULE"]
        if env.get("PAYCORE_LOG_LEVEL"):
            values["function_log_level"] = env["PAYCORE_LOG_LEVEL"].upper()
        for variable, field_name in (
            ("PAYCORE_SANDBOX_NOTIFY_SCHEDULE", "sandbox_notify_schedule"),
            ("PAYCORE_SIMULATOR_NOTIFY_SCHEDULE", "simulator_notify_schedule"),
            ("PAYCORE_ASYNC_RETRY_DELAYS", "async_retry_delays"),
        ):
            if env.get(variable):
                text = env[variable]
                values[field_name] = tuple(float(part) for part in text.split(",") if part.strip())
        if "admin_token" in overrides and "admin_token_generated" not in overrides:
            overrides["admin_token_generated"] = False
        values.update(overrides)
        return cls(**values)

    @classmethod
    def free_ports(cls, **overrides: Any) -> LocalProfile:
        """A profile on free ports for every server (tests, benchmarks), ignoring the
        environment, then ``overrides``."""
        ports = dict.fromkeys(PORT_VARIABLES, 0)
        return cls.from_env({}, **{**ports, "moto_port": 0, **overrides})

    def simulator_port(self, channel: str) -> int:
        """The port of ``channel``'s simulator (0: a free one)."""
        port: int = getattr(self, f"{channel}_port")
        return port

    def parameter_overrides(self, api_url: str) -> dict[str, str]:
        """Values for the template's parameters (undeclared ones are ignored by the loader)."""
        overrides = {
            "StageName": self.stage_name,
            "PublicApiUrl": api_url,
            "CallbackWaitSeconds": str(self.callback_wait_seconds),
            "ChannelQueryIntervalSeconds": str(self.channel_query_interval_seconds),
            "WebhookRetrySchedule": self.webhook_retry_schedule,
            "WebhookMaxAttempts": str(self.webhook_max_attempts),
            # Local merchants' webhook receivers live on loopback.
            "AllowPrivateWebhookTargets": "true",
            "ChannelTimeoutSeconds": f"{self.channel_timeout_seconds:g}",
        }
        if self.channel_accounts is not None:
            overrides["ChannelAccounts"] = self.channel_accounts
        if self.function_log_level:
            overrides["LogLevel"] = self.function_log_level
        return overrides

    def secret_values(self) -> dict[str, str]:
        """Secret values by the template's secret logical id (instead of generating them).
        Channel account secrets are filled after provisioning by the local channel services
        (``local_runtime.channel_services``)."""
        return {"AdminTokenSecret": self.admin_token}
