"""What every route needs from the request it serves: who is calling, the idempotent run of
a command, and the answer serialized through its resource model, named (paycore.api.resources
imports it on first need)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from paycore.api import problem
from paycore.api.idempotency import HEADER, REPLAYED_HEADER, IdempotentCommands
from paycore.api.resources import ResourceName, serialize
from paycore.auth import bearer_token
from paycore.config import get_settings
from paycore.dal.trade_store import TradeStore
from paycore.errors import Unauthenticated

if TYPE_CHECKING:
    from paycore.services.payments import MerchantTerms

JSON = "application/json"

Command = Callable[[], tuple[int, dict[str, Any]]]


def new_router() -> Router:
    """A Powertools router for one module's routes (included into the resolver)."""
    return Router()  # type: ignore[no-untyped-call]


class Listed(Protocol):
    """What a list answer holds: objects that render their public JSON."""

    def resource(self) -> dict[str, Any]: ...


class Http:
    """Request helpers bound to one resolver (one per Lambda container)."""

    def __init__(
        self,
        app: APIGatewayRestResolver,
        commands: IdempotentCommands,
        store_factory: Callable[[], TradeStore] = TradeStore,
    ) -> None:
        self._app = app
        self._commands = commands
        self._store_factory = store_factory

    def store(self) -> TradeStore:
        return self._store_factory()

    def _caller(self) -> dict[str, Any]:
        context = self._app.current_event.raw_event.get("requestContext", {}).get("authorizer")
        return dict(context or {})

    def merchant_id(self) -> str:
        """The calling merchant (the authorizer checked its key); 401 for anyone else."""
        context = self._caller()
        if context.get("role") != "merchant" or not context.get("merchant_id"):
            raise Unauthenticated("this route needs a merchant API key")
        return str(context["merchant_id"])

    def merchant_terms(self) -> MerchantTerms | None:
        """The calling merchant's terms as the authorizer passed them on (None when it did
        not: the service reads the merchant then)."""
        from paycore.services.payments import MerchantTerms  # noqa: PLC0415 - with payments

        context = self._caller()
        try:
            return MerchantTerms(
                int(context["fee_rate_bps"]), int(context["settlement_delay_days"])
            )
        except (KeyError, TypeError, ValueError):
            return None

    def api_key(self) -> str:
        """The API key the caller presented (the authorizer checked it): the key roll needs
        it for merchants onboarded before keys were rolled."""
        headers = self._app.current_event.headers or {}
        header = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        token = bearer_token(str(header))
        if token is None:
            raise Unauthenticated("this route needs a merchant API key")
        return token

    def require_admin(self) -> None:
        if self._caller().get("role") != "admin":
            raise Unauthenticated("this route needs the platform admin token")

    def header(self, name: str) -> str | None:
        """A request header (any case)."""
        return (self._app.current_event.headers or {}).get(name)

    def query(self, name: str) -> str | None:
        """A query parameter a route reads itself (a page's, not a described one)."""
        return self._app.current_event.get_query_string_value(name)

    def callback_base_url(self) -> str:
        """Where channels call back: the API's public base URL."""
        return self.public_base_url()

    def public_base_url(self) -> str:
        """The API as the world reaches it (channels, buyers): the configured public URL,
        else this request's ``https://domain/stage``."""
        configured = get_settings().public_api_url
        if configured:
            return configured.rstrip("/")
        context = self._app.current_event.raw_event.get("requestContext", {})
        return f"https://{context.get('domainName')}/{context.get('stage')}"

    def answer(
        self,
        model: ResourceName,
        payload: dict[str, Any],
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response[str]:
        if status >= 400:
            return Response(status, problem.PROBLEM_CONTENT_TYPE, json.dumps(payload), headers)
        return Response(status, JSON, serialize(model, payload), headers)

    def answer_list(
        self, model: ResourceName, items: Iterable[Listed], has_more: bool
    ) -> Response[str]:
        """A page of a list: ``{"object": "list", "data", "has_more"}``."""
        data = [item.resource() for item in items]
        return self.answer(model, {"object": "list", "data": data, "has_more": has_more})

    def idempotent(
        self,
        scope: str,
        body: Any,
        command: Command,
        model: ResourceName,
        *,
        shown_once: dict[str, Any] | None = None,
    ) -> Response[str]:
        """Run ``command`` at most once per Idempotency-Key (``IdempotentCommands``).
        ``shown_once``: fields the command filled with secrets that its stored answer holds as
        null, so only this first answer shows them."""
        event = self._app.current_event
        status, payload, replayed = self._commands.execute(
            scope=scope,
            key=event.headers.get(HEADER) if event.headers else None,
            method=event.http_method,
            path=event.path,
            body=body,
            command=command,
        )
        if shown_once and not replayed and status < 400:
            payload = {**payload, **shown_once}
        headers = {REPLAYED_HEADER: "true"} if replayed else None
        return self.answer(model, payload, status, headers)
