"""Arize's REST API (``api: rest``): ``POST /v2/spans/annotate`` with up to 1000 records per
request (https://www.arize.com/docs/api-reference/spans/annotate-a-batch-of-project-spans).

Arize upserts per (record, name), so retries and re-runs are safe; a 404 (a span missing
from the time window) or another 4xx splits the request until the record at fault is alone.
Each request names a time window: at most 31 days (7 for sessions), never ending in the
future.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import requests

from bridge.errors import ConfigError
from bridge.http import json_of
from bridge.records import Annotation, Outcome, Status
from bridge.targets.arize.client import NOT_THE_API, PLATFORM, ArizeClient, json_body
from bridge.targets.arize.common import iso, lookback_margin, record_start, remote_id
from bridge.targets.arize.config import ArizeConfig
from bridge.targets.base import Progress, chunks

# Documented REST window: at most 31 days (7 for sessions) before end_time.
REST_WINDOW_DAYS = {"span": 31, "trace": 31, "session": 7}
_SPLIT_STATUSES = (400, 404, 409, 413, 422)
Window = tuple[datetime | None, datetime | None]
Record = tuple[str, list[tuple[int, Annotation]]]  # record id, its (index, annotation) pairs


class RestSender:
    """Annotations as REST records (``api: rest``).

    :param kind: the record kind (span, trace, session), named in messages.
    :param now: the current UTC time (a window may not end in the future).
    """

    def __init__(
        self, config: ArizeConfig, client: ArizeClient, kind: str, now: Callable[[], datetime]
    ) -> None:
        self.config = config
        self.client = client
        self.kind = kind
        self.now = now
        self.margin = lookback_margin(config)

    def payload(self, a: Annotation) -> dict[str, Any]:
        """The request body for this one record."""
        return self._rest_body([(a.target_id, [a])], self._rest_window([a]))

    def problems(self, a: Annotation) -> list[str]:
        """Nothing beyond what both APIs check: REST takes a label, a score and a text."""
        return []

    def send(
        self, ready: Sequence[tuple[int, Annotation]], outcomes: dict[int, Outcome], done: Progress
    ) -> None:
        """Send the records in groups; settle each row in ``outcomes``."""
        for group, window in self._rest_groups(ready):
            settled = self._send_records(group, window)
            outcomes.update(settled)
            done(len(settled))

    def check(self, now: datetime) -> None:
        """The configured window is one Arize accepts."""
        c = self.config
        days = REST_WINDOW_DAYS[c.granularity]
        if c.end_time is not None and c.end_time > now:
            raise ConfigError(
                f"target.end_time {iso(c.end_time)} is in the future; Arize refuses windows "
                "that end in the future"
            )
        if c.start_time is not None and c.end_time is None:
            if now - c.start_time > timedelta(days=days):
                raise ConfigError(
                    f"target.start_time {iso(c.start_time)} is more than {days} days ago; "
                    f"Arize searches at most {days} days: set end_time too"
                )

    def _rest_window(self, items: Sequence[Annotation]) -> Window:
        """Where Arize looks for these records: from the mapping, or around their starts."""
        c = self.config
        if not c.start_time_column:
            return c.start_time, c.end_time
        starts = [s for s in (record_start(self.config, a)[0] for a in items) if s is not None]
        if not starts:
            return None, None
        start = min(starts) - self.margin
        end = min(max(starts) + self.margin, self.now())  # a window may not end in the future
        return start.replace(microsecond=0), end.replace(microsecond=0)

    def _rest_groups(
        self, ready: Sequence[tuple[int, Annotation]]
    ) -> list[tuple[list[Record], Window]]:
        """Records (one per id, with all its annotations) in requests of at most
        ``records_per_request``, each within one allowed time window."""
        records: dict[str, list[tuple[int, Annotation]]] = {}
        for i, a in ready:
            records.setdefault(a.target_id, []).append((i, a))
        ordered = list(records.items())
        limit = self.config.records_per_request
        if not self.config.start_time_column:
            window = self._rest_window([])
            return [(list(part), window) for part in chunks(ordered, limit)]
        span = timedelta(days=REST_WINDOW_DAYS[self.config.granularity]) - 2 * self.margin

        def first_start(record: Record) -> datetime:
            starts = [record_start(self.config, a)[0] for _, a in record[1]]
            return min(s for s in starts if s is not None)

        ordered.sort(key=first_start)
        groups: list[tuple[list[Record], Window]] = []
        current: list[Record] = []
        for record in ordered:
            if current and (
                len(current) >= limit or first_start(record) - first_start(current[0]) > span
            ):
                groups.append((current, self._rest_window([a for r in current for _, a in r[1]])))
                current = []
            current.append(record)
        if current:
            groups.append((current, self._rest_window([a for r in current for _, a in r[1]])))
        return groups

    def _rest_body(
        self,
        records: Sequence[tuple[str, Sequence[Annotation]]],
        window: Window,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"project_id": self.config.project_id}
        start, end = window
        if start is not None:
            body["start_time"] = iso(start)
        if end is not None:
            body["end_time"] = iso(end)
        body["granularity"] = self.config.granularity.upper()
        body["annotations"] = [
            {"record_id": record_id, "values": [_rest_value(a) for a in items]}
            for record_id, items in records
        ]
        return body

    def _send_records(self, records: list[Record], window: Window) -> dict[int, Outcome]:
        body = self._rest_body([(rid, [a for _, a in items]) for rid, items in records], window)
        response = self.client.call("POST", "/v2/spans/annotate", json=body)
        if 200 <= response.status_code < 300:
            if response.content.strip():  # documented: 202, no body; a sign-in page has one
                json_of(response, platform=PLATFORM, fix=NOT_THE_API)
            return {i: Outcome.ok(remote_id(a)) for _, items in records for i, a in items}
        if response.status_code in _SPLIT_STATUSES and len(records) > 1:
            half = len(records) // 2
            return {
                **self._send_records(records[:half], window),
                **self._send_records(records[half:], window),
            }
        detail = _problem(response)
        if response.status_code == 404:
            start, end = window
            where = (
                f" between {iso(start) if start else '31 days before end_time'} and "
                f"{iso(end) if end else 'now'}"
            )
            message = (
                f"Arize has no {self.kind} '{records[0][0]}' in project "
                f"{self.config.project_id}{where} ({detail}); check the id and the time window"
            )
        else:
            message = f"Arize answered {response.status_code}: {detail}"
        status = Status.REJECTED if response.status_code < 500 else Status.FAILED
        return {i: Outcome(status, message) for _, items in records for i, _a in items}


def _rest_value(a: Annotation) -> dict[str, Any]:
    value: dict[str, Any] = {"name": a.name}
    if a.label is not None:
        value["label"] = a.label
    if a.score is not None:
        value["score"] = a.score
    if a.explanation is not None:
        value["text"] = a.explanation
    return value


def _problem(response: requests.Response) -> str:
    """An RFC 9457 Problem's title and detail, or the text."""
    body = json_body(response)
    if isinstance(body, dict) and (body.get("title") or body.get("detail")):
        parts = [str(body[k]) for k in ("title", "detail") if body.get(k)]
        return ": ".join(parts)[:300]
    return response.text.strip()[:300] or response.reason or "no detail"
