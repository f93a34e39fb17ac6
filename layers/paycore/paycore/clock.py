"""Time in one place: RFC 3339 UTC strings with millisecond precision."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.zoneinfo import get_zonefile_instance


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


@cache
def time_zone(name: str) -> tzinfo:
    """The IANA time zone ``name`` (``Asia/Shanghai``): from the system's database, else from
    the copy python-dateutil ships (a Lambda runtime may have no system database).
    ``ValueError`` for a name neither knows."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        found: tzinfo | None = get_zonefile_instance().get(name)
        if found is None:
            raise ValueError(f"unknown time zone {name!r}") from None
        return found


def local_date(moment: str | datetime, zone: str) -> date:
    """The calendar day of ``moment`` (RFC 3339 text or an aware datetime) in ``zone``."""
    instant = parse_rfc3339(moment) if isinstance(moment, str) else moment
    return instant.astimezone(time_zone(zone)).date()


def days_after(day: date, days: int) -> str:
    """``days`` after ``day``, as ``YYYY-MM-DD``."""
    return (day + timedelta(days=days)).isoformat()
