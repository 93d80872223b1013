"""What the GraphQL and REST senders share: a record's start time (from the mapping or a
sheet column), the ``startTime`` sent for it, and Arize's upsert key."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from bridge.records import Annotation
from bridge.targets.arize.config import ArizeConfig

# Documented: startTime "should be at most 24 hours before the record start time".
MAX_LOOKBACK = timedelta(hours=24)


def iso(moment: datetime) -> str:
    """UTC, to the second, as the documentation's example: 2024-11-15T10:15:30Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any, column: str) -> tuple[datetime | None, str | None]:
    """A record start time from a cell: a date-time, a date or ISO-8601 text (UTC if no zone)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, f"{column} is empty; give the record's start time (ISO-8601, e.g. " + (
            "2024-11-15T10:15:30Z)"
        )
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None, (
                f"{column} '{value.strip()}' is not a date-time; write it as ISO-8601, e.g. "
                "2024-11-15T10:15:30Z"
            )
    else:
        return None, (
            f"{column} is {value!r}, not a date-time; format the column as a date-time or "
            "ISO-8601 text"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment, None


def start_time_for(record_start: datetime, margin: timedelta) -> datetime:
    """startTime ``margin`` before the record's start, to the second, never more than 24 h."""
    start = (record_start - margin).replace(microsecond=0)
    while record_start - start > MAX_LOOKBACK:
        start += timedelta(seconds=1)
    return start


def lookback_margin(config: ArizeConfig) -> timedelta:
    """How far before a record's start Arize is told to look."""
    return timedelta(hours=config.start_time_margin_hours)


def record_start(config: ArizeConfig, a: Annotation) -> tuple[datetime | None, str | None]:
    """The record's start time from ``start_time_column``, or why the cell is not one."""
    column = config.start_time_column or ""
    return parse_time(a.extra.get(column), column)


def start_time(config: ArizeConfig, a: Annotation) -> datetime | None:
    """The ``startTime`` to send: the mapping's, or ``margin`` before the record's start."""
    if config.start_time is not None:
        return config.start_time
    if config.start_time_column:
        start, _ = record_start(config, a)
        return None if start is None else start_time_for(start, lookback_margin(config))
    return None


def remote_id(a: Annotation) -> str:
    """Arize's upsert key: the record and the annotation name."""
    return f"{a.target_id}:{a.name}"
