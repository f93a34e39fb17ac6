"""Path and query parameters shared by several routes."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from paycore.money import CurrencyCode

Limit = Annotated[int, Query(ge=1, le=100, description="Page size (1-100)")]
StartingAfter = Annotated[
    str | None,
    Query(max_length=64, description="The last id of the page before (cursor)"),
]
BuyerId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The merchant's id of the buyer")
]
CurrencyQuery = Annotated[CurrencyCode, Query(description="ISO 4217 code")]
