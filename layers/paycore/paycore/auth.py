"""Who is calling: a merchant (Bearer API key, stored only as its hash) or the platform
admin (Bearer admin token kept in Secrets Manager). Used by the API Gateway authorizer.

A rolled key is refused from its ``expires_at`` on. API Gateway caches each answer for 60
seconds (the template's ``ReauthorizeEvery``), so a caller already let in keeps getting in for
at most 60 seconds after that.

A merchant's context also carries the merchant's terms a payment takes when it starts
(``fee_rate_bps``, ``settlement_delay_days``), so the API does not read the merchant again.
API Gateway caches the answer per key for the authorizer's TTL (60 s): a change of terms
reaches new payments within that time."""

from __future__ import annotations

import hmac
from typing import Any

from paycore.api_keys import API_KEY_PREFIX, hash_api_key
from paycore.clock import now_rfc3339
from paycore.config import get_settings
from paycore.dal.secrets import get_secret
from paycore.dal.trade_store import TradeStore
from paycore.domain.models import Merchant

# API Gateway turns exactly this message into its UNAUTHORIZED gateway response (401).
UNAUTHORIZED = "Unauthorized"


class Denied(Exception):
    def __init__(self) -> None:
        super().__init__(UNAUTHORIZED)


def bearer_token(header: str) -> str | None:
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        return None
    return token


# The platform admin's routes (method, path). Everything else under /v1 is a merchant's.
ADMIN_ROUTES: tuple[tuple[str, str], ...] = (
    ("POST", "/v1/merchants"),
    ("POST", "/v1/settlements/run"),
    ("GET", "/v1/ledger/trial_balance"),
)


def _stage_arn(method_arn: str) -> str:
    """arn:...:api-id/stage/VERB/path -> arn:...:api-id/stage (the cached answer holds for
    every route of the stage, so the policy names the routes itself)."""
    api, _, rest = method_arn.partition("/")
    stage = rest.split("/", 1)[0] if rest else "*"
    return f"{api}/{stage}"


def _statement(effect: str, resources: list[str]) -> dict[str, Any]:
    return {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resources}


def _policy(
    principal: str, statements: list[dict[str, Any]], context: dict[str, str]
) -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {"Version": "2012-10-17", "Statement": statements},
        "context": context,
    }


def _merchant_policy(merchant: Merchant, method_arn: str) -> dict[str, Any]:
    """Every route but the admin's: a merchant key on an admin route is refused by API
    Gateway itself (401), before any body is read."""
    stage = _stage_arn(method_arn)
    admin = [f"{stage}/{method}{path}" for method, path in ADMIN_ROUTES]
    return _policy(
        merchant.id,
        [_statement("Allow", [f"{stage}/*/*"]), _statement("Deny", admin)],
        {
            "role": "merchant",
            "merchant_id": merchant.id,
            # Context values reach the API as strings.
            "fee_rate_bps": str(merchant.fee_rate_bps),
            "settlement_delay_days": str(merchant.settlement_delay_days),
        },
    )


def _admin_policy(method_arn: str) -> dict[str, Any]:
    """The admin's routes only: the admin token is no merchant key."""
    stage = _stage_arn(method_arn)
    admin = [f"{stage}/{method}{path}" for method, path in ADMIN_ROUTES]
    return _policy(
        "platform-admin", [_statement("Allow", admin)], {"role": "admin", "merchant_id": ""}
    )


def authorize(
    authorization: str, method_arn: str, store: TradeStore | None = None
) -> dict[str, Any]:
    """The caller's policy (the routes its role may call, with the role in the context), or
    ``Denied`` (401)."""
    token = bearer_token(authorization)
    if token is None:
        raise Denied
    if token.startswith(API_KEY_PREFIX):
        store = store or TradeStore()
        merchant_id = store.merchant_id_for_key(hash_api_key(token), now_rfc3339())
        merchant = store.get_merchant(merchant_id) if merchant_id is not None else None
        if merchant is None:
            raise Denied
        return _merchant_policy(merchant, method_arn)
    admin_token = get_secret(get_settings().admin_token_secret_id)
    if hmac.compare_digest(token.encode(), admin_token.encode()):
        return _admin_policy(method_arn)
    raise Denied
