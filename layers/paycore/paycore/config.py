"""Runtime settings, read from the environment through one cached accessor.

Nothing reads ``os.environ`` at import time: ``get_settings()`` builds the model on first use
and caches it per distinct environment, so the local runtime (which runs several functions in
one process, each with its own environment overlay) and tests that change variables both see
the right values.
"""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, field_validator

from paycore.clock import time_zone

_PREFIXES = ("PAYCORE_",)
_NAMES = (
    "TRADE_TABLE_NAME",
    "IDEMPOTENCY_TABLE_NAME",
    "NOTIFICATION_QUEUE_URL",
    "DEAD_LETTER_QUEUE_URL",
    "NOTIFIER_FUNCTION_NAME",
    "PAYMENT_STATE_MACHINE_ARN",
    "REFUND_STATE_MACHINE_ARN",
    "ADMIN_TOKEN_SECRET_ID",
    "CHANNEL_SECRET_PREFIX",
    "PUBLIC_API_URL",
    "CALLBACK_WAIT_SECONDS",
    "CHANNEL_QUERY_INTERVAL_SECONDS",
    "PAYMENT_ACTION_WAIT_SECONDS",
    "WEBHOOK_RETRY_SCHEDULE",
    "WEBHOOK_TIMEOUT_SECONDS",
    "WEBHOOK_ALLOW_PRIVATE_TARGETS",
    "WEBHOOK_SECRET_KEY_ID",
    "IDEMPOTENCY_TTL_SECONDS",
    "CHANNEL_ACCOUNTS",
    "CHANNEL_TIMEOUT_SECONDS",
    "SETTLEMENT_TIME_ZONE",
)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    trade_table_name: str = Field(default="paycore-trade", alias="TRADE_TABLE_NAME")
    idempotency_table_name: str = Field(
        default="paycore-idempotency", alias="IDEMPOTENCY_TABLE_NAME"
    )
    notification_queue_url: str = Field(default="", alias="NOTIFICATION_QUEUE_URL")
    # The notification queue's dead-letter queue; only the redrive function needs it.
    dead_letter_queue_url: str = Field(default="", alias="DEAD_LETTER_QUEUE_URL")
    # The notifier function: an event's first delivery is handed to it by an asynchronous
    # invoke (its retries go through the notification queue). Empty: queue every event.
    notifier_function_name: str = Field(default="", alias="NOTIFIER_FUNCTION_NAME")
    payment_state_machine_arn: str = Field(default="", alias="PAYMENT_STATE_MACHINE_ARN")
    refund_state_machine_arn: str = Field(default="", alias="REFUND_STATE_MACHINE_ARN")
    admin_token_secret_id: str = Field(default="", alias="ADMIN_TOKEN_SECRET_ID")
    # Base URL channels call back; empty means "derive it from the incoming request".
    public_api_url: str = Field(default="", alias="PUBLIC_API_URL")
    # How long the state machine waits for a channel callback before it queries the channel.
    callback_wait_seconds: int = Field(default=300, ge=1, alias="CALLBACK_WAIT_SECONDS")
    # Pause between two status queries once the callback is late.
    channel_query_interval_seconds: int = Field(
        default=30, ge=1, alias="CHANNEL_QUERY_INTERVAL_SECONDS"
    )
    # How long POST /payments waits for the channel's redirect URL before answering 202.
    payment_action_wait_seconds: float = Field(
        default=8.0, ge=0, alias="PAYMENT_ACTION_WAIT_SECONDS"
    )
    # Seconds to wait before retry n (1-based) of a webhook delivery.
    webhook_retry_schedule: tuple[int, ...] = Field(
        default=(30, 60, 300, 600, 1800, 3600, 7200, 14400, 28800, *(43200,) * 5),
        alias="WEBHOOK_RETRY_SCHEDULE",
    )
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, alias="WEBHOOK_TIMEOUT_SECONDS")
    # Webhooks to loopback/private addresses are refused (SSRF) except in local development.
    webhook_allow_private_targets: bool = Field(
        default=False, alias="WEBHOOK_ALLOW_PRIVATE_TARGETS"
    )
    # The KMS key that seals webhook signing secrets at rest (paycore.dal.webhook_secrets):
    # the API seals with it, the notifier unseals.
    webhook_secret_key_id: str = Field(default="", alias="WEBHOOK_SECRET_KEY_ID")
    idempotency_ttl_seconds: int = Field(default=86400, ge=86400, alias="IDEMPOTENCY_TTL_SECONDS")
    # The channel accounts payments are routed to, in priority order (JSON list; see
    # paycore.channels.routing). Empty: no channel account, so no channel.
    channel_accounts: str = Field(default="", alias="CHANNEL_ACCOUNTS")
    # Each account's credentials are the JSON of the secret named prefix + account id (see
    # paycore.channels.accounts). Empty: no account has credentials.
    channel_secret_prefix: str = Field(default="", alias="CHANNEL_SECRET_PREFIX")
    # Per HTTP request to a channel. A timeout only makes the outcome unknown, never wrong.
    channel_timeout_seconds: float = Field(default=5.0, gt=0, alias="CHANNEL_TIMEOUT_SECONDS")
    # The time zone of settlement days: settlement S runs at 00:00 of S there, and a payment's
    # day is its day there (docs/money.md).
    settlement_time_zone: str = Field(default="Asia/Shanghai", alias="SETTLEMENT_TIME_ZONE")

    @field_validator("settlement_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        time_zone(value)  # ValueError for an unknown zone
        return value

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(int(part) for part in value.split(",") if part.strip())
        return value


def _snapshot() -> tuple[tuple[str, str], ...]:
    return tuple((name, os.environ[name]) for name in _NAMES if name in os.environ)


@lru_cache(maxsize=32)
def _settings_for(snapshot: tuple[tuple[str, str], ...]) -> Settings:
    return Settings.model_validate(dict(snapshot))


def get_settings() -> Settings:
    """The settings for the current environment (cached per distinct environment)."""
    return _settings_for(_snapshot())
