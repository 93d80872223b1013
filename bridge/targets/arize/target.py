"""Arize AX: human annotations through GraphQL ``updateAnnotations`` or REST ``/v2/spans/annotate``.

Arize is a hosted service that the machines annobridge is built on cannot reach: this module
follows the documented contract (the Annotations API page, reference/log10-arize.md), and the
tests check it against a local stand-in that executes the documented GraphQL types.

GraphQL (``api: graphql``, the default) sends the documented mutation (seed 002), one per
annotation, ``mutations_per_request`` of them per HTTP request under aliases ``a0, a1, ...``.
A sliding-window limiter keeps under the documented 300 mutations a minute. Before sending,
each annotation is checked as the documentation states: a label or a score, not both, with the
matching ``annotationType``; a ``startTime`` at most 24 h before the record's start (the
environment is one of the four documented names, checked when the mapping is read). An error
of one mutation (by ``path``, or by the variable it names) rejects that row only; an error of
the whole document splits the request until the culprit is alone. ``input_shape:
annotation_updates`` sends the newer input (``annotationUpdates`` with ``annotationConfigId``),
whose business errors come back in-band as ``result { message }``.

REST (``api: rest``) posts up to 1000 records per request with Bearer auth. Arize upserts per
(record, name), so retries and re-runs are safe; a 404 (a span missing from the time window)
or another 4xx splits the request until the record at fault is alone.

Arize keeps one annotation per record and name (``updatedBy`` does not tell two apart): two
rows that would write the same one are both refused, as the rules do for exact duplicates.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import requests

from bridge import http
from bridge.errors import AuthRefused, ConfigError, TargetUnreachable
from bridge.records import Annotation, Outcome, Status
from bridge.targets.arize.config import ArizeConfig
from bridge.targets.arize.graphql import Operation, assign_errors, document, is_retryable, literal
from bridge.targets.arize.ratelimit import RateLimiter
from bridge.targets.base import ChecksAnnotations, Progress, Target, chunks

DEFAULT_GRAPHQL_URL = "https://app.arize.com"
DEFAULT_REST_URL = "https://api.arize.com"
PLATFORM = "Arize"
AUTH_HINT = (
    "set ARIZE_API_KEY to an Arize developer API key with access to this space (GraphQL "
    "mutations may need an enterprise plan)"
)
# Documented: startTime "should be at most 24 hours before the record start time".
MAX_LOOKBACK = timedelta(hours=24)
# Documented REST window: at most 31 days (7 for sessions) before end_time.
REST_WINDOW_DAYS = {"span": 31, "trace": 31, "session": 7}
_SPLIT_STATUSES = (400, 404, 409, 413, 422)
_NOT_FOUND_HINT = (
    "check the id, and that the record started at most 24 h after startTime "
    "(start_time or start_time_column in the mapping)"
)
_LEGACY_SELECTION = "{ clientMutationId }"
_RESULT_SELECTION = (
    "{ result { __typename ... on UpdateAnnotationSuccess { success } "
    "... on UpdateAnnotationError { message } } }"
)
Window = tuple[datetime | None, datetime | None]
Record = tuple[str, list[tuple[int, Annotation]]]  # record id, its (index, annotation) pairs


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


class ArizeTarget(Target, ChecksAnnotations):
    """Annotations on Arize AX.

    :param config: the mapping's ``target`` section.
    :param names: the mapping's annotation names (checked against annotation_config_ids).
    :param session: an HTTP session (tests inject one); built from ARIZE_API_KEY otherwise.
    :param env: where ARIZE_API_KEY is read from (default: os.environ).
    :param now: the current UTC time (tests pin it).
    :param clock: monotonic seconds for the rate limiter.
    :param sleep: how the rate limiter waits (tests pass one that advances ``clock``).
    """

    name = "arize"

    def __init__(
        self,
        config: ArizeConfig,
        *,
        names: Sequence[str] = (),
        session: requests.Session | None = None,
        env: Mapping[str, str] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        environ = os.environ if env is None else env
        self.config = config
        self.kind: str = config.record_kind()
        self.api = config.api
        default = DEFAULT_GRAPHQL_URL if self.api == "graphql" else DEFAULT_REST_URL
        base = (config.url or default).rstrip("/")
        self.base_url = base.removesuffix("/graphql").removesuffix("/v2")
        self._api_key = environ.get("ARIZE_API_KEY", "").strip()
        headers: dict[str, str] = {}
        if self._api_key:
            headers = (
                {"x-api-key": self._api_key}
                if self.api == "graphql"
                else {"Authorization": f"Bearer {self._api_key}"}
            )
        if session is None:
            session = http.make_session(headers=headers, timeout=config.timeout)
            http.settle_environment(session, self.base_url)
        self.session = session
        self._now = now
        self.limiter = RateLimiter(config.mutations_per_minute, 60.0, clock=clock, sleep=sleep)
        self._margin = timedelta(hours=config.start_time_margin_hours)
        if self.api == "graphql" and config.input_shape == "annotation_updates":
            missing = [n for n in dict.fromkeys(names) if n not in config.annotation_config_ids]
            unknown = [n for n in config.annotation_config_ids if names and n not in names]
            if missing:
                raise ConfigError(
                    f"target.annotation_config_ids has no config id for {', '.join(missing)}; "
                    "add 'name: <annotation config id>' for every annotation"
                )
            if unknown:
                raise ConfigError(
                    f"target.annotation_config_ids names {', '.join(unknown)}, which no "
                    "annotation in the mapping has; fix the name or remove it"
                )

    # -- the Target interface -----------------------------------------------------------

    def fingerprint(self) -> str:
        c = self.config
        if self.api == "graphql":
            return f"arize|graphql|{self.base_url}|{c.model_id}|{c.environment}"
        return f"arize|rest|{self.base_url}|{c.project_id}|{c.granularity}"

    def payload(self, a: Annotation) -> dict[str, Any]:
        """GraphQL: the variables of the documented mutation (seed 002) or the newer input;
        REST: the request body for this one record."""
        if self.api == "rest":
            return self._rest_body([(a.target_id, [a])], self._rest_window([a]))
        if self.config.input_shape == "annotation_updates":
            return self._update_input(a)
        return self._legacy_values(a)

    def close(self) -> None:
        self.session.close()

    def check(self) -> None:
        if not self._api_key:
            raise ConfigError(f"ARIZE_API_KEY is not set; {AUTH_HINT}")
        c = self.config
        now = self._now()
        if c.start_time is not None and c.start_time > now:
            raise ConfigError(
                f"target.start_time {iso(c.start_time)} is in the future; Arize looks for "
                "records that start after it"
            )
        if self.api == "rest":
            self._check_rest_window(now)
            return
        response = self._call("POST", "/graphql", json={"query": "query check { __typename }"})
        body = _json(response)
        if not isinstance(body, dict) or not ("data" in body or "errors" in body):
            raise ConfigError(
                f"{self.base_url}/graphql did not answer as a GraphQL API "
                f"({response.status_code}: {response.text.strip()[:200]}); check target.url "
                "(default https://app.arize.com)"
            )
        errors = assign_errors(body, []).general
        if errors:
            detail = "; ".join(errors)[:300]
            if any(w in detail.lower() for w in ("auth", "api key", "forbidden", "permission")):
                raise AuthRefused(f"{PLATFORM} refused the request ({detail}); {AUTH_HINT}")
            raise ConfigError(f"Arize's GraphQL API refused a test query ({detail})")

    def problems(self, a: Annotation) -> list[str]:
        """What the documented contract refuses in this annotation, before anything is sent."""
        out: list[str] = []
        if self.api == "graphql":
            if a.label is not None and a.score is not None:
                out.append(
                    f"Arize's GraphQL API takes a label or a score for '{a.name}', not both; "
                    "map them as two annotations (one with label_column, one with "
                    "score_column), or use api: rest"
                )
            elif a.label is None and a.score is None and not self._text_annotation(a):
                out.append(
                    f"Arize needs a label or a score for '{a.name}'; an explanation alone "
                    "cannot be sent as a label or score annotation"
                )
        if self.config.start_time_column:
            _, problem = self._record_start(a)
            if problem:
                out.append(problem)
        return out

    def send(
        self, annotations: Sequence[Annotation], progress: Progress | None = None
    ) -> list[Outcome]:
        done = progress or (lambda n: None)
        outcomes: dict[int, Outcome] = {}
        for i, reason in _collisions(annotations, self.kind).items():
            outcomes[i] = Outcome.rejected(f"not sent: {reason}")
        ready: list[tuple[int, Annotation]] = []
        for i, a in enumerate(annotations):
            if i in outcomes:
                continue
            problems = self.problems(a)
            if problems:
                outcomes[i] = Outcome.rejected("not sent: " + "; ".join(problems))
            else:
                ready.append((i, a))
        done(len(outcomes))
        local = len(outcomes)
        try:
            if self.api == "graphql":
                per_request = min(self.config.mutations_per_request, self.limiter.limit)
                for batch in chunks(ready, per_request):
                    settled = self._send_mutations(list(batch))
                    outcomes.update(settled)
                    done(len(settled))
            else:
                for group, window in self._rest_groups(ready):
                    settled = self._send_records(group, window)
                    outcomes.update(settled)
                    done(len(settled))
        except TargetUnreachable as exc:
            if len(outcomes) == local:
                raise  # nothing reached Arize yet: the whole run is "unreachable" (exit 3)
            # Keep what Arize confirmed; the rest is retried next run (upserts: safe).
            lost = Outcome.failed(f"Arize stopped answering during the sync ({exc})")
            for i in range(len(annotations)):
                outcomes.setdefault(i, lost)
        return [outcomes[i] for i in range(len(annotations))]

    # -- shared -------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return http.request(
            self.session,
            method,
            f"{self.base_url}{path}",
            platform=PLATFORM,
            auth_hint=AUTH_HINT,
            **kwargs,
        )

    def _record_start(self, a: Annotation) -> tuple[datetime | None, str | None]:
        column = self.config.start_time_column or ""
        return parse_time(a.extra.get(column), column)

    def _start_time(self, a: Annotation) -> datetime | None:
        if self.config.start_time is not None:
            return self.config.start_time
        if self.config.start_time_column:
            record_start, _ = self._record_start(a)
            return None if record_start is None else start_time_for(record_start, self._margin)
        return None

    @staticmethod
    def _remote_id(a: Annotation) -> str:
        """Arize's upsert key: the record and the annotation name."""
        return f"{a.target_id}:{a.name}"

    # -- GraphQL ------------------------------------------------------------------------

    def _text_annotation(self, a: Annotation) -> bool:
        """The newer input has a text annotation type: an explanation alone is sent as one."""
        return (
            self.config.input_shape == "annotation_updates"
            and a.label is None
            and a.score is None
            and a.explanation is not None
        )

    def _legacy_values(self, a: Annotation) -> dict[str, Any]:
        """The documented variables (seed 002) of one annotation, in the documented order."""
        values: dict[str, Any] = {"name": a.name}
        if a.annotator:
            values["updatedBy"] = a.annotator
        if a.label is not None:
            values["label"] = a.label
            values["annotationType"] = "label"
        elif a.score is not None:
            values["score"] = a.score
            values["annotationType"] = "score"
        values["modelId"] = self.config.model_id
        if a.explanation is not None:
            values["note"] = a.explanation
        values["modelEnvironment"] = self.config.environment
        values["recordId"] = a.target_id
        start = self._start_time(a)
        values["startTime"] = iso(start) if start else None
        return values

    def _update_input(self, a: Annotation) -> dict[str, Any]:
        """The newer UpdateAnnotationsInput of one annotation."""
        annotation: dict[str, Any] = {"name": a.name}
        if a.annotator:
            annotation["updatedBy"] = a.annotator
        if a.label is not None:
            annotation.update(annotationType="label", label=a.label)
        elif a.score is not None:
            annotation.update(annotationType="score", score=a.score)
        elif a.explanation is not None:
            annotation.update(annotationType="text", text=a.explanation)
        value: dict[str, Any] = {
            "modelId": self.config.model_id,
            "recordId": a.target_id,
            "modelEnvironment": self.config.environment,
            "annotationUpdates": [
                {
                    "annotationConfigId": self.config.annotation_config_ids.get(a.name),
                    "annotation": annotation,
                }
            ],
        }
        start = self._start_time(a)
        if start is not None:
            value["startTime"] = iso(start)
        if a.explanation is not None and not self._text_annotation(a):
            value["note"] = {"text": a.explanation}
        return value

    def _operation(self, alias: str, a: Annotation) -> Operation:
        if self.config.input_shape == "annotation_updates":
            return Operation(
                alias,
                f"updateAnnotations(input: ${alias})",
                _RESULT_SELECTION,
                {alias: ("UpdateAnnotationsInput!", self._update_input(a))},
            )
        values = self._legacy_values(a)
        variables: dict[str, tuple[str, Any]] = {}

        def var(name: str, gql_type: str) -> str:
            variables[f"{alias}_{name}"] = (gql_type, values[name])
            return f"${alias}_{name}"

        fields: list[tuple[str, str]] = [("modelId", "$modelId")]
        if "note" in values:
            fields.append(("note", literal([("text", var("note", "String!"))])))
        annotation = [("name", var("name", "String!"))]
        if "updatedBy" in values:
            annotation.append(("updatedBy", var("updatedBy", "String")))
        if "label" in values:
            annotation.append(("label", var("label", "String")))
        if "score" in values:
            annotation.append(("score", var("score", "Float")))
        annotation.append(("annotationType", var("annotationType", "AnnotationType!")))
        fields += [
            ("annotations", literal(annotation)),
            ("modelEnvironment", "$modelEnvironment"),
            ("recordId", var("recordId", "String!")),
            ("startTime", var("startTime", "DateTime!")),
        ]
        return Operation(
            alias, f"updateAnnotations(input: {literal(fields)})", _LEGACY_SELECTION, variables
        )

    def _document(self, items: Sequence[tuple[int, Annotation]]) -> dict[str, Any]:
        operations = [self._operation(f"a{k}", a) for k, (_, a) in enumerate(items)]
        if self.config.input_shape == "annotation_updates":
            text, variables = document("mutation", "updateAnnotations", operations)
            return {"query": text, "variables": variables, "operationName": "updateAnnotations"}
        shared = {
            "modelId": ("ID!", self.config.model_id),
            "modelEnvironment": ("ModelEnvironmentName!", self.config.environment),
        }
        text, variables = document("mutation", "addAnnotations", operations, shared)
        return {"query": text, "variables": variables, "operationName": "addAnnotations"}

    def _send_mutations(self, items: list[tuple[int, Annotation]]) -> dict[int, Outcome]:
        """Send aliased mutations; map each alias's result or errors to its row."""
        out: dict[int, Outcome] = {}
        pending = items
        while pending:
            self.limiter.acquire(len(pending))
            response = self._call("POST", "/graphql", json=self._document(pending))
            body = _json(response)
            if not isinstance(body, dict) or not ("data" in body or "errors" in body):
                detail = response.text.strip()[:300]
                if response.status_code in _SPLIT_STATUSES and len(pending) > 1:
                    return {**out, **self._split(pending)}
                status = Status.REJECTED if response.status_code < 500 else Status.FAILED
                for i, _ in pending:
                    out[i] = Outcome(status, f"Arize answered {response.status_code}: {detail}")
                return out
            aliases = [f"a{k}" for k in range(len(pending))]
            errors = assign_errors(body, aliases)
            data = body.get("data")
            if not isinstance(data, dict):
                # Nothing ran: the document was refused before execution.
                if errors.by_alias:
                    for (i, _), alias in zip(pending, aliases, strict=True):
                        if alias in errors.by_alias:
                            out[i] = _error_outcome(errors.by_alias[alias])
                    pending = [
                        p
                        for p, alias in zip(pending, aliases, strict=True)
                        if alias not in errors.by_alias
                    ]
                    continue
                if len(pending) > 1 and not any(is_retryable(m) for m in errors.general):
                    return {**out, **self._split(pending)}
                for i, _ in pending:
                    out[i] = _error_outcome(errors.general or ["no data and no error"])
                return out
            for (i, a), alias in zip(pending, aliases, strict=True):
                if alias in errors.by_alias:
                    out[i] = _error_outcome(errors.by_alias[alias])
                    continue
                result = data.get(alias)
                if not isinstance(result, dict):
                    out[i] = _error_outcome(errors.general or ["Arize returned no result"])
                    continue
                out[i] = self._result_outcome(a, result)
            return out
        return out

    def _split(self, pending: list[tuple[int, Annotation]]) -> dict[int, Outcome]:
        """One mutation the server refuses must not sink the request: halve until alone."""
        half = len(pending) // 2
        return {**self._send_mutations(pending[:half]), **self._send_mutations(pending[half:])}

    def _result_outcome(self, a: Annotation, result: Mapping[str, Any]) -> Outcome:
        if self.config.input_shape == "annotations":
            return Outcome.ok(self._remote_id(a))  # documented selection: { clientMutationId }
        inner = result.get("result")
        if isinstance(inner, dict):
            if inner.get("success") is True:
                return Outcome.ok(self._remote_id(a))
            if inner.get("message"):
                return _error_outcome([str(inner["message"])])
        return Outcome.failed(f"Arize returned an unexpected result: {json.dumps(result)[:200]}")

    # -- REST -----------------------------------------------------------------------------

    def _check_rest_window(self, now: datetime) -> None:
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
        starts = [s for s in (self._record_start(a)[0] for a in items) if s is not None]
        if not starts:
            return None, None
        start = min(starts) - self._margin
        end = min(max(starts) + self._margin, self._now())  # a window may not end in the future
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
        span = timedelta(days=REST_WINDOW_DAYS[self.config.granularity]) - 2 * self._margin

        def first_start(record: Record) -> datetime:
            starts = [self._record_start(a)[0] for _, a in record[1]]
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
        response = self._call("POST", "/v2/spans/annotate", json=body)
        if 200 <= response.status_code < 300:
            return {i: Outcome.ok(self._remote_id(a)) for _, items in records for i, a in items}
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


def _collisions(annotations: Sequence[Annotation], kind: str) -> dict[int, str]:
    """Rows that would write the same Arize annotation (record, name): all of them refused."""
    seen: dict[tuple[str, str], list[int]] = {}
    for i, a in enumerate(annotations):
        seen.setdefault((a.target_id, a.name), []).append(i)
    out: dict[int, str] = {}
    for (record_id, name), where in seen.items():
        if len(where) < 2:
            continue
        rows = [str(annotations[i].metadata.get("row", "?")) for i in where]
        for i in where:
            out[i] = (
                f"rows {', '.join(rows)} write the same Arize annotation ('{name}' on {kind} "
                f"{record_id}); Arize keeps one per {kind} and name, so they would overwrite "
                "each other: keep one row, or give each annotator their own annotation name"
            )
    return out


def _error_outcome(messages: Sequence[str]) -> Outcome:
    text = "; ".join(dict.fromkeys(messages))[:300]
    if any(is_retryable(m) for m in messages):
        return Outcome.failed(f"Arize: {text}")
    lowered = text.lower()
    if "not found" in lowered or "does not exist" in lowered or "no record" in lowered:
        return Outcome.rejected(f"Arize: {text}; {_NOT_FOUND_HINT}")
    return Outcome.rejected(f"Arize: {text}")


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _problem(response: requests.Response) -> str:
    """An RFC 9457 Problem's title and detail, or the text."""
    body = _json(response)
    if isinstance(body, dict) and (body.get("title") or body.get("detail")):
        parts = [str(body[k]) for k in ("title", "detail") if body.get(k)]
        return ": ".join(parts)[:300]
    return response.text.strip()[:300] or response.reason or "no detail"
