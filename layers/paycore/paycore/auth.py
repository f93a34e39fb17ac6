"""Who is calling: a merchant (Bearer API key, stored only as its hash) or the platform
admin (Bearer admin token kept in Secrets Manager). Used by the API Gateway authorizer."""

from __future__ import annotations

import hmac
from typing import Any

from paycore.config import get_settings
from paycore.dal.secrets import get_secret
from paycore.dal.trade_store import TradeStore
from paycore.services.merchants import API_KEY_PREFIX, hash_api_key

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


def _api_wide_arn(method_arn: str) -> str:
    """arn:...:api-id/stage/VERB/path -> arn:...:api-id/stage/*/* so a cached answer holds
    for every route (the routes themselves check the role)."""
    api, _, rest = method_arn.partition("/")
    stage = rest.split("/", 1)[0] if rest else "*"
    return f"{api}/{stage}/*/*"


def _allow(principal: str, method_arn: str, context: dict[str, str]) -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": _api_wide_arn(method_arn),
                }
            ],
        },
        "context": context,
    }


def authorize(
    authorization: str, method_arn: str, store: TradeStore | None = None
) -> dict[str, Any]:
    """An Allow policy with the caller's role, or ``Denied`` (401)."""
    token = bearer_token(authorization)
    if token is None:
        raise Denied
    if token.startswith(API_KEY_PREFIX):
        merchant_id = (store or TradeStore()).merchant_id_for_key(hash_api_key(token))
        if merchant_id is None:
            raise Denied
        return _allow(merchant_id, method_arn, {"role": "merchant", "merchant_id": merchant_id})
    admin_token = get_secret(get_settings().admin_token_secret_id)
    if hmac.compare_digest(token.encode(), admin_token.encode()):
        return _allow("platform-admin", method_arn, {"role": "admin", "merchant_id": ""})
    raise Denied
