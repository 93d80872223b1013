"""A local stand-in of Arize's annotation APIs, built from the documented contract.

This is NOT Arize, which cannot be reached from here. It implements what the documentation
states (reference/log10-arize.md, seed 002) so tests can check what annobridge sends:

- ``POST /graphql`` (header ``x-api-key``): every document is parsed and validated with
  graphql-core against tests/arize_schema.graphql (the errors are recorded per call, and the
  document is refused as a server would), then executed. ``updateAnnotations`` refuses what
  the documentation says Arize refuses: a label and a score together, or a value that does
  not match ``annotationType``; a record that is not found because it does not exist or
  because ``startTime`` is after its start or more than 24 h before it. The newer input
  (``annotationUpdates``) reports business errors in-band as ``result { message }``. A sliding
  window over the injected clock counts mutations (aliased fields) per minute and answers 429
  past the documented 300.
- ``POST /v2/spans/annotate`` (``Authorization: Bearer``): at most 1000 records (100
  sessions), unique record ids, no duplicate names per record, names of existing annotation
  configs, a window of at most 31 days (7 for sessions) that does not end in the future, and
  an all-or-nothing 404 when a span is missing from the window; 202 with no body; errors as
  RFC 9457 Problem JSON.

Messages are the stand-in's own wording: Arize's exact texts are not documented.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    build_schema,
    execute_sync,
    parse,
    validate,
)

from bridge.records import Annotation

SCHEMA_PATH = Path(__file__).with_name("arize_schema.graphql")
DOCUMENTED_MUTATIONS_PER_MINUTE = 300
MAX_LOOKBACK = timedelta(hours=24)


def _parse_datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("DateTime must be an ISO-8601 string")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("DateTime needs a time zone, e.g. Z")
    return moment


def load_schema() -> GraphQLSchema:
    """The documented schema, with DateTime parsed strictly (ISO-8601 with a zone)."""
    schema = build_schema(SCHEMA_PATH.read_text(encoding="utf-8"))
    scalar: Any = schema.type_map["DateTime"]
    # graphql-core 3.3 coerces inputs with coerce_input_value; 3.2 with parse_value.
    scalar.coerce_input_value = scalar.parse_value = _parse_datetime
    scalar.parse_literal = lambda node, _variables=None: _parse_datetime(
        node.value if isinstance(node, StringValueNode) else None
    )
    return schema


SCHEMA = load_schema()


@functools.lru_cache(maxsize=256)
def _checked(text: str) -> tuple[DocumentNode | None, tuple[str, ...]]:
    """A document parsed and validated once (graphql-core takes ~0.2 s on 50 aliases)."""
    try:
        doc = parse(text)
    except GraphQLError as exc:
        return None, (exc.message,)
    return doc, tuple(e.message for e in validate(SCHEMA, doc))


def document_errors(text: str) -> list[str]:
    """What graphql-core finds wrong with a document, against the documented schema."""
    return list(_checked(text)[1])


@dataclass(frozen=True)
class RowAnnotation(Annotation):
    """An Annotation with the row's extra columns, as the pipeline will carry them
    (bridge/targets/_extra.py): lets tests drive the targets' column paths today."""

    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class FakeClock:
    """Monotonic seconds that advance only when someone sleeps (no real waiting)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class Call:
    """One request the stand-in received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float
    status: int = 0
    mutations: int = 0
    document_errors: list[str] = field(default_factory=list)


class StandInServer:
    """A JSON HTTP server on 127.0.0.1 that records calls; subclasses answer them.

    ``script`` holds canned answers for the next requests: (status, body, headers), or a
    callable taking the Call and returning one (or None to answer normally).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.calls: list[Call] = []
        self.script: list[Any] = []
        self.lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the stand-in first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> StandInServer:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                status, payload, headers = owner.dispatch(
                    self.command, self.path, dict(self.headers.items()), body
                )
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if data and "Content-Type" not in headers:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def dispatch(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            call = Call(method, path, headers, body, self.clock())
            self.calls.append(call)
            self.inspect(call)
            answer = None
            if self.script:  # one step per request; None answers normally
                step = self.script.pop(0)
                answer = step(call) if callable(step) else step
            if answer is None:
                answer = self.answer(call)
            status, payload, *rest = answer
            call.status = status
            return status, payload, (rest[0] if rest else {})

    def inspect(self, call: Call) -> None:
        """Look at every request, scripted answer or not (subclasses record what they check)."""

    def answer(self, call: Call) -> tuple[int, Any, dict[str, str]]:  # pragma: no cover
        raise NotImplementedError


# Error wording taken from the documented contract, never made up here (the target's
# retry rule is checked against exactly these; tests/test_arize_graphql.py):
# - 429 is "Too Many Requests", its reason phrase (RFC 6585 section 4), which REST v2 sends
#   as the title of its RFC 9457 Problem JSON (reference/log10-arize.md, "Errors: 400, 401,
#   403, 404, 422, 429 as RFC 9457 Problem JSON");
# - the GraphQL limit is the one the "Rate Limit" section of Arize's resource-limitations page
#   documents ("mutations are limited to 300 per minute"), said in its own words.
RATE_LIMITED = "Too Many Requests"
RATE_LIMIT_DOCUMENTED = "Rate Limit: mutations are limited to 300 per minute"
# Said "never" for this document, not "later": the complexity limit of the same page.
COMPLEXITY_DOCUMENTED = "complexity cost limit of 1000"


def _problem(status: int, title: str, detail: str, path: str) -> tuple[int, Any, dict[str, str]]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return status, {**body, "instance": path}, {"Content-Type": "application/problem+json"}


class ArizeStandIn(StandInServer):
    """Arize's GraphQL updateAnnotations and REST spans/annotate, as documented."""

    def __init__(
        self,
        *,
        api_key: str = "arize-test-key",
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        mutations_per_minute: int = DOCUMENTED_MUTATIONS_PER_MINUTE,
    ) -> None:
        super().__init__(clock)
        self.api_key = api_key
        self.now = now
        self.mutations_per_minute = mutations_per_minute
        # (model_id, environment, record_id) -> the record's start
        self.records: dict[tuple[str, str, str], datetime] = {}
        # (project_id, granularity, record_id) -> the record's start
        self.spans: dict[tuple[str, str, str], datetime] = {}
        self.annotation_configs: dict[str, str] = {}  # config id -> name (newer input)
        self.config_names: set[str] = set()  # annotation config names (REST)
        # (model or project, record_id, name) -> what is stored
        self.annotations: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.rate_limited = 0

    # -- seeding ------------------------------------------------------------------------

    def add_record(self, model_id: str, environment: str, record_id: str, start: datetime) -> None:
        self.records[(model_id, environment, record_id)] = start

    def add_span(
        self, project_id: str, record_id: str, start: datetime, granularity: str = "SPAN"
    ) -> None:
        self.spans[(project_id, granularity, record_id)] = start

    # -- inspection ---------------------------------------------------------------------

    def graphql_calls(self) -> list[Call]:
        return [c for c in self.calls if c.path == "/graphql"]

    def invalid_documents(self) -> list[tuple[str, list[str]]]:
        return [(c.body["query"], c.document_errors) for c in self.calls if c.document_errors]

    def max_mutations_in_window(self, period: float = 60.0) -> int:
        """The most mutations received in any window (t - period, t]."""
        times = [(c.at, c.mutations) for c in self.graphql_calls() if c.mutations]
        return max((sum(n for s, n in times if t - period < s <= t) for t, _ in times), default=0)

    # -- dispatch -------------------------------------------------------------------------

    def inspect(self, call: Call) -> None:
        """Validate every GraphQL document against the documented schema; count mutations."""
        body = call.body if isinstance(call.body, dict) else {}
        text = body.get("query")
        if call.path != "/graphql" or not isinstance(text, str):
            return
        call.document_errors = document_errors(text)
        if call.document_errors:
            return
        doc = _checked(text)[0]
        assert doc is not None
        for op in doc.definitions:
            if isinstance(op, OperationDefinitionNode) and op.operation == OperationType.MUTATION:
                call.mutations += len(op.selection_set.selections)

    def answer(self, call: Call) -> tuple[int, Any, dict[str, str]]:
        if call.method == "POST" and call.path == "/graphql":
            return self._graphql(call)
        if call.method == "POST" and call.path == "/v2/spans/annotate":
            return self._rest(call)
        return 404, {"error": "not found"}, {}

    def _graphql(self, call: Call) -> tuple[int, Any, dict[str, str]]:
        if call.headers.get("x-api-key") != self.api_key:
            return 401, {"errors": [{"message": "unauthorized: invalid or missing API key"}]}, {}
        body = call.body if isinstance(call.body, dict) else {}
        text = body.get("query")
        if not isinstance(text, str):
            return 400, {"errors": [{"message": "no query"}]}, {}
        if call.document_errors:
            return 200, {"errors": [{"message": m} for m in call.document_errors]}, {}
        if call.mutations:
            used = sum(
                c.mutations
                for c in self.graphql_calls()
                if c is not call and c.status != 429 and call.at - 60.0 < c.at <= call.at
            )
            if used + call.mutations > self.mutations_per_minute:
                self.rate_limited += 1
                message = f"{RATE_LIMITED}: {RATE_LIMIT_DOCUMENTED}"
                return 429, {"errors": [{"message": message}]}, {"Retry-After": "0"}
        doc = _checked(text)[0]
        assert doc is not None
        result = execute_sync(
            SCHEMA,
            doc,
            root_value={"updateAnnotations": self._update_annotations, "node": None},
            variable_values=body.get("variables") or {},
            operation_name=body.get("operationName"),
        )
        return 200, result.formatted, {}

    # -- GraphQL resolvers --------------------------------------------------------------

    @staticmethod
    def _value_error(annotation: dict[str, Any]) -> str | None:
        kind = annotation["annotationType"]
        given = {k for k in ("label", "score", "text") if annotation.get(k) is not None}
        if given != {kind}:
            return (
                f"annotationType {kind} needs {kind} and only {kind}; got "
                f"{', '.join(sorted(given)) or 'no value'}"
            )
        return None

    def _find_record(self, value: dict[str, Any]) -> str | None:
        key = (value["modelId"], value.get("modelEnvironment") or "tracing", value["recordId"])
        start = self.records.get(key)
        if start is None:
            return f"record {value['recordId']} not found"
        since = value.get("startTime")
        if since is not None and not (start - MAX_LOOKBACK <= since <= start):
            return f"record {value['recordId']} not found after startTime {since.isoformat()}"
        return None

    def _store(self, value: dict[str, Any], annotation: dict[str, Any]) -> None:
        note = value.get("note") or {}
        key = (value["modelId"], value["recordId"], annotation["name"])
        self.annotations[key] = {**annotation, "note": note.get("text")}

    def _update_annotations(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        if input.get("annotations") is not None:
            if input.get("modelEnvironment") is None or input.get("startTime") is None:
                raise GraphQLError("modelEnvironment and startTime are required")
            for annotation in input["annotations"]:
                problem = self._value_error(annotation)
                if problem:
                    raise GraphQLError(problem)
            missing = self._find_record(input)
            if missing:
                raise GraphQLError(missing)
            for annotation in input["annotations"]:
                self._store(input, annotation)
            return {"clientMutationId": input.get("clientMutationId")}
        if input.get("annotationUpdates") is not None:
            for update in input["annotationUpdates"]:
                name = self.annotation_configs.get(update["annotationConfigId"])
                annotation = update["annotation"]
                problem = self._value_error(annotation)
                if name is None:
                    problem = f"annotation config {update['annotationConfigId']} not found"
                elif name != annotation["name"]:
                    problem = f"annotation config {update['annotationConfigId']} is '{name}'"
                problem = problem or self._find_record(input)
                if problem:
                    return {"result": {"__typename": "UpdateAnnotationError", "message": problem}}
            for update in input["annotationUpdates"]:
                self._store(input, update["annotation"])
            return {"result": {"__typename": "UpdateAnnotationSuccess", "success": True}}
        raise GraphQLError("give annotations or annotationUpdates")

    # -- REST -----------------------------------------------------------------------------

    def _rest(self, call: Call) -> tuple[int, Any, dict[str, str]]:
        path = call.path
        if call.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _problem(401, "Unauthorized", "invalid or missing bearer token", path)
        body = call.body if isinstance(call.body, dict) else {}
        project = body.get("project_id")
        records = body.get("annotations")
        granularity = body.get("granularity", "SPAN")
        if not isinstance(project, str) or not isinstance(records, list) or not records:
            return _problem(422, "Unprocessable Entity", "project_id and annotations", path)
        if granularity not in ("SPAN", "TRACE", "SESSION"):
            return _problem(422, "Unprocessable Entity", f"granularity {granularity}", path)
        limit, days = (100, 7) if granularity == "SESSION" else (1000, 31)
        if len(records) > limit:
            return _problem(422, "Unprocessable Entity", f"at most {limit} records", path)
        ids = [r.get("record_id") for r in records]
        if len(set(ids)) != len(ids):
            return _problem(400, "Bad Request", "record_id must be unique in a request", path)
        for record in records:
            names = [v.get("name") for v in record.get("values") or []]
            if not names or len(set(names)) != len(names):
                return _problem(400, "Bad Request", "duplicate or missing value names", path)
            unknown = sorted(set(names) - self.config_names)
            if unknown:
                detail = f"no annotation config named {', '.join(unknown)} in the space"
                return _problem(400, "Bad Request", detail, path)
        now = self.now()
        try:
            end = _parse_datetime(body["end_time"]) if "end_time" in body else now
            start = (
                _parse_datetime(body["start_time"])
                if "start_time" in body
                else end - timedelta(days=days)
            )
        except (TypeError, ValueError) as exc:
            return _problem(422, "Unprocessable Entity", f"bad time: {exc}", path)
        if end > now or start >= end or end - start > timedelta(days=days):
            detail = f"the window must end by now and span at most {days} days"
            return _problem(400, "Bad Request", detail, path)

        def in_window(record_id: Any) -> bool:
            began = self.spans.get((project, granularity, record_id))
            return began is not None and start <= began <= end

        missing = [rid for rid in ids if not in_window(rid)]
        if missing:
            detail = f"records not found in the window: {', '.join(map(str, missing))}"
            return _problem(404, "Not Found", detail, path)
        for record in records:
            for value in record["values"]:
                self.annotations[(project, record["record_id"], value["name"])] = dict(value)
        return 202, None, {}
