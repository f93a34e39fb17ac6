"""Secrets Manager values, cached in memory for a few minutes (never logged).

``get_secret`` reads the platform admin token; ``get_json_secret`` reads a JSON secret (a
channel account's credentials) through Powertools' parameters utility with ``max_age``, so a
rotated secret is picked up without a redeploy. Its provider belongs to this module rather than
Powertools' process-wide default, so a fresh import of the layer (a new local runtime in the
same process, a test) never sees another deployment's cached values.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import (
    GetParameterError,
    TransformParameterError,
)
from botocore.exceptions import ClientError

from paycore.aws import client
from paycore.errors import ServiceUnavailable

SECRET_MAX_AGE_SECONDS = 300
_TTL_SECONDS = float(SECRET_MAX_AGE_SECONDS)
_cache: dict[str, tuple[float, str]] = {}
_lock = threading.Lock()
_provider: SecretsProvider | None = None


class SecretMissing(LookupError):
    """No secret of that name exists (or it has no current value)."""


class SecretNotJson(ValueError):
    """The secret's value is not JSON."""


def get_secret(secret_id: str) -> str:
    """The current string value of ``secret_id``."""
    now = time.monotonic()
    with _lock:
        cached = _cache.get(secret_id)
        if cached and now - cached[0] < _TTL_SECONDS:
            return cached[1]
    value = str(client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"])
    with _lock:
        _cache[secret_id] = (now, value)
    return value


def get_json_secret(name: str, max_age: int = SECRET_MAX_AGE_SECONDS) -> Any:
    """The decoded JSON value of secret ``name`` (cached ``max_age`` seconds). Raises
    ``SecretMissing``, ``SecretNotJson``, or ``ServiceUnavailable`` when Secrets Manager cannot
    be read (no error carries the value)."""
    try:
        return _secrets().get(name, max_age=max_age, transform="json")
    except TransformParameterError:
        raise SecretNotJson(f"secret {name} is not JSON") from None
    except GetParameterError as exc:
        cause = exc.__context__
        if isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") in (
            "ResourceNotFoundException",
        ):
            raise SecretMissing(f"no secret {name}") from None
        raise ServiceUnavailable(
            f"secret {name} cannot be read", code="secret_unavailable"
        ) from None


def clear_cache() -> None:
    """Forget every cached value (tests; a new deployment in the same process)."""
    global _provider  # noqa: PLW0603 - the module's one provider
    with _lock:
        _cache.clear()
        _provider = None


def _secrets() -> SecretsProvider:
    global _provider  # noqa: PLW0603 - the module's one provider
    with _lock:
        if _provider is None:
            _provider = SecretsProvider(boto3_client=client("secretsmanager"))
        return _provider
