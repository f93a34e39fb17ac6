"""Idempotency-Key handling for every POST, on Powertools' idempotency utility.

The key is scoped to the caller (merchant id, or the platform admin); the method, path and
body are the payload that must match. Configured against Powertools' defaults that are wrong
for payments: records live 24 hours (not 1), and a missing key never reaches this code (we
only wrap requests that carry one). The first response, status and body, is what a replay
gets, refusals (4xx) included; a failure of ours (5xx) removes the record, so the merchant's
retry runs the command again.

The record holds the response as the command returned it, so a command must never return a
secret: onboarding returns its new credentials beside the stored answer (see the merchants
route), and a replay shows them as null. ``execute`` says whether the answer is a replay, which
the API reports in the ``Idempotent-Replayed`` header.

Powertools' idempotency utility is imported with the first command that carries a key, not at
INIT: a container that serves reads only never loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from paycore.api import problem
from paycore.config import get_settings
from paycore.errors import (
    ConcurrentUpdate,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    PaycoreError,
    Throttled,
    TryAgain,
    ValidationFailed,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255

# Refusals that say "try again" rather than "no": never replayed.
_TRANSIENT = (ConcurrentUpdate, Throttled, TryAgain)

Command = Callable[[], tuple[int, dict[str, Any]]]


class IdempotentCommands:
    """Runs commands at most once per (caller, Idempotency-Key)."""

    def __init__(self) -> None:
        self._config: IdempotencyConfig | None = None
        self._context: LambdaContext | None = None
        self._run: Callable[..., dict[str, Any]] | None = None

    def _runner(self) -> Callable[..., dict[str, Any]]:
        if self._run is None:
            from aws_lambda_powertools.utilities.idempotency import (  # noqa: PLC0415
                DynamoDBPersistenceLayer,  # on first need: the first command with a key
                IdempotencyConfig,
                idempotent_function,
            )

            settings = get_settings()
            self._config = IdempotencyConfig(
                event_key_jmespath="[scope, key]",
                payload_validation_jmespath="request",
                raise_on_no_idempotency_key=True,
                expires_after_seconds=settings.idempotency_ttl_seconds,
            )
            if self._context is not None:
                self._config.register_lambda_context(self._context)
            persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table_name)

            @idempotent_function(
                data_keyword_argument="envelope",
                persistence_store=persistence,
                config=self._config,
            )
            def run(command: Command, envelope: dict[str, Any]) -> dict[str, Any]:
                try:
                    status, body = command()
                except PaycoreError as error:
                    status, body = problem.error_body(error)
                    if status >= 500 or isinstance(error, _TRANSIENT):
                        raise  # not an answer: the record goes, a retry runs the command again
                    # A refusal is an answer too: the same request gets it again.
                return {"status": status, "body": body}

            self._run = run
        return self._run

    def register_context(self, context: LambdaContext) -> None:
        """Lets an in-progress lock expire with the invocation that holds it."""
        self._context = context
        if self._config is not None:
            self._config.register_lambda_context(context)

    def execute(
        self,
        *,
        scope: str,
        key: str | None,
        method: str,
        path: str,
        body: Any,
        command: Command,
    ) -> tuple[int, dict[str, Any], bool]:
        """The command's answer (status, body) and whether it is a replay of an earlier one."""
        if key is None:
            status, body = command()
            return status, body, False
        if not 1 <= len(key) <= MAX_KEY_LENGTH:
            raise ValidationFailed(
                f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters",
                code="invalid_idempotency_key",
                param=HEADER,
            )
        envelope = {"scope": scope, "key": key, "request": [method, path, body]}
        ran = False

        def run_once() -> tuple[int, dict[str, Any]]:
            nonlocal ran
            ran = True
            return command()

        runner = self._runner()
        from aws_lambda_powertools.utilities.idempotency.exceptions import (  # noqa: PLC0415
            IdempotencyAlreadyInProgressError,  # loaded with the runner
            IdempotencyValidationError,
        )

        try:
            result = runner(run_once, envelope=envelope)
        except IdempotencyValidationError as exc:
            raise IdempotencyKeyReused(
                f"this {HEADER} was already used with a different request",
                param=HEADER,
            ) from exc
        except IdempotencyAlreadyInProgressError as exc:
            raise IdempotencyInProgress(
                f"a request with this {HEADER} is still being processed; retry shortly",
                param=HEADER,
            ) from exc
        return int(result["status"]), dict(result["body"]), not ran
