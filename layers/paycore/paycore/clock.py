"""Time in one place: RFC 3339 UTC strings with millisecond precision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_rfc3339() -> str:
    return rfc3339(now())


def parse_rfc3339(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("timestamp needs a time zone")
    return moment.astimezone(UTC)


def in_seconds(seconds: int) -> str:
    return rfc3339(now() + timedelta(seconds=seconds))


def seconds_after(moment: str, seconds: int) -> str:
    """``seconds`` after the RFC 3339 ``moment``, in the same form."""
    return rfc3339(parse_rfc3339(moment) + timedelta(seconds=seconds))
