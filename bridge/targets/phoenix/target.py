"""Arize Phoenix: span, trace and session annotations over REST, with confirmed delivery.

Phoenix has two write modes (reference/phoenix.md):

- ``sync=true`` inserts one row at a time inside the request (~650/s), returns an id per
  row, and fails the whole request with 404 if any id is unknown;
- ``sync=false`` queues rows and answers ``[]`` at once (~3000/s landed), but rows for
  unknown ids are retried in memory and dropped ten minutes later, and a queue flush that
  grows too large is dropped whole.

annobridge takes the fast mode only where it can prove delivery: span annotations on spans
that exist are queued in batches and then read back until each one is there with the
content we sent. Anything not confirmed, every trace and session annotation, and every
edit of an annotation sent before (the queue skips updates within the same second) goes
through ``sync=true``, where a 404 names the unknown ids: those rows are rejected and the
rest resent. The upsert key is (name, record id, identifier), so every retry and re-run is
safe.

The server's one process is what limits a sync, so the work is laid out to keep it busy
without waste:

- before a batch is queued, a sample of its span ids (``PROBE_SPANS``, always its last) is
  checked to exist, and only if one is missing are all of them: checking every span makes
  Phoenix serialise whole spans, a fifth of its work in a sync. A wrong project or a sheet
  of stale ids is caught by the sample; a stray unknown id that slips past it is queued,
  found missing at read-back and rejected by ``sync=true`` (Phoenix keeps retrying the
  queued copy in memory for ten minutes: if the span arrives meanwhile, it lands with the
  row's content, and the next run confirms it);
- the next batch is queued while the one before it is being inserted, never more than
  ``max_unconfirmed`` rows unconfirmed (merged queue flushes past a few thousand rows fail
  on Postgres);
- a batch is read back once its last row is stored, which a one-span read finds cheaply:
  the queue inserts in order, so by then every row of the batch that will land has.
"""

from __future__ import annotations

import math
import os
import re
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import requests

from bridge import http
from bridge.errors import ConfigError, TargetUnreachable
from bridge.records import (
    Annotation,
    ExportQuery,
    ExportRecord,
    Outcome,
    PlatformRule,
    Status,
)
from bridge.targets.base import ExportsRecords, Progress, PullsRules, Target, chunks
from bridge.targets.phoenix.config import PhoenixConfig
from bridge.targets.phoenix.rules import from_phoenix_config

DEFAULT_URL = "http://localhost:6006"
PLATFORM = "Phoenix"
AUTH_HINT = (
    "set PHOENIX_API_KEY to a Phoenix API key with write access (Settings > API Keys), "
    "or PHOENIX_CLIENT_HEADERS"
)
# Phoenix's GET endpoints accept at most 1000 ids per request.
MAX_IDS_PER_GET = 1000
# Phoenix's queue is flushed every 0.1 s: look for a queued batch's last row that often at
# first, less often while the server is slow, and after this long read the whole batch back
# anyway (the last row may be the one the server refused).
FIRST_LOOK = 0.1
MAX_LOOK_INTERVAL = 0.5
LAST_ROW_PATIENCE = 5.0
# Span ids checked per batch before it is queued; when one of them is missing, all are
# checked. A whole-batch check makes Phoenix serialise every span (a fifth of its work in a
# sync, more with real prompts in the spans); the sample catches a wrong project or a sheet
# of stale ids at 5% of that.
PROBE_SPANS = 50

_ID_FIELD = {"span": "span_id", "trace": "trace_id", "session": "session_id"}
_MISSING = re.compile(r"(?:Spans|Traces|Sessions) with IDs (.*) do not exist\.?$", re.S)


def base_url_from_env(env: Mapping[str, str]) -> str:
    """Phoenix's own precedence: PHOENIX_ENDPOINT, PHOENIX_COLLECTOR_ENDPOINT (with any
    trailing /v1/traces removed), PHOENIX_BASE_URL, PHOENIX_HOST[:PHOENIX_PORT]."""
    for name in ("PHOENIX_ENDPOINT", "PHOENIX_COLLECTOR_ENDPOINT", "PHOENIX_BASE_URL"):
        value = env.get(name, "").strip()
        if value:
            return value.rstrip("/").removesuffix("/v1/traces")
    host = env.get("PHOENIX_HOST", "").strip()
    if host:
        port = env.get("PHOENIX_PORT", "6006").strip()
        host = host if "://" in host else f"http://{host}"
        return host if re.search(r":\d+$", host) else f"{host}:{port}"
    return DEFAULT_URL


def headers_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """Auth headers: PHOENIX_CLIENT_HEADERS ("k=v,k2=v2", URL-encoded), then PHOENIX_API_KEY."""
    headers: dict[str, str] = {}
    for part in env.get("PHOENIX_CLIENT_HEADERS", "").split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            headers[urllib.parse.unquote(k.strip())] = urllib.parse.unquote(v.strip())
    api_key = env.get("PHOENIX_API_KEY", "").strip()
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _result(a: Annotation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if a.label is not None:
        out["label"] = a.label
    if a.score is not None:
        out["score"] = a.score
    if a.explanation is not None:
        out["explanation"] = a.explanation
    return out


def _same_result(sent: dict[str, Any], stored: dict[str, Any] | None) -> bool:
    stored = stored or {}
    for field in ("label", "explanation"):
        if sent.get(field) != stored.get(field):
            return False
    a, b = sent.get("score"), stored.get("score")
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)


def probe_sample(ids: Sequence[str], size: int = PROBE_SPANS) -> list[str]:
    """``size`` of the ids, evenly spread, always with the last one (all of them if fewer)."""
    if len(ids) <= size:
        return list(ids)
    step = (len(ids) - 1) / (size - 1)
    return [ids[round(i * step)] for i in range(size)]


class PhoenixTarget(Target, ExportsRecords, PullsRules):
    """Annotations on a Phoenix server.

    :param config: the mapping's ``target`` section.
    :param session: an HTTP session (tests inject one); built from the env otherwise.
    :param env: where PHOENIX_* variables are read from (default: os.environ).
    :param sleep: how to wait between confirmation polls (tests pass a no-op).
    """

    name = "phoenix"

    def __init__(
        self,
        config: PhoenixConfig,
        *,
        session: requests.Session | None = None,
        env: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        environ = os.environ if env is None else env
        self.config = config
        self.kind: str = config.annotate
        self.base_url = (config.url or base_url_from_env(environ)).rstrip("/")
        self.project = config.project or environ.get("PHOENIX_PROJECT_NAME") or "default"
        if session is None:
            session = http.make_session(headers=headers_from_env(environ), timeout=config.timeout)
            http.settle_environment(session, self.base_url)
        self.session = session
        self._sleep = sleep
        self._clock = clock

    def fingerprint(self) -> str:
        return f"phoenix|{self.base_url}|{self.kind}"

    def payload(self, a: Annotation) -> dict[str, Any]:
        return {
            _ID_FIELD[a.kind]: a.target_id,
            "name": a.name,
            "annotator_kind": a.annotator_kind,
            "result": _result(a),
            "metadata": a.metadata,
            "identifier": a.identifier,
        }

    def close(self) -> None:
        self.session.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return http.request(
            self.session,
            method,
            f"{self.base_url}{path}",
            platform=PLATFORM,
            auth_hint=AUTH_HINT,
            **kwargs,
        )

    def check(self) -> None:
        self._call("GET", "/v1/projects", params={"limit": 1})

    def send(
        self, annotations: Sequence[Annotation], progress: Progress | None = None
    ) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        done = progress or (lambda n: None)
        index = {id(a): i for i, a in enumerate(annotations)}
        slow: list[Annotation] = []
        fast: list[Annotation] = []
        if self.kind == "span":
            for a in annotations:
                (slow if a.is_update else fast).append(a)
        else:
            slow = list(annotations)
        try:
            slow.extend(self._send_queued(fast, index, outcomes, done))
            for batch in chunks(slow, self.config.batch_size):
                settled = self._send_confirmed(batch)
                for a in batch:
                    outcomes[index[id(a)]] = settled[id(a)]
                done(len(batch))
        except TargetUnreachable as exc:
            if not outcomes:
                raise  # nothing happened yet: the whole run is "unreachable" (exit 3)
            # Part of the run is confirmed: keep it, and let the rest be retried next run.
            lost = Outcome.failed(f"Phoenix stopped answering during the sync ({exc})")
            for i in range(len(annotations)):
                outcomes.setdefault(i, lost)
        return [outcomes[i] for i in range(len(annotations))]

    def _existing_spans(self, span_ids: Sequence[str]) -> set[str]:
        """Which of these spans exist in the project (one GET per 1000 ids)."""
        found: set[str] = set()
        for part in chunks(span_ids, MAX_IDS_PER_GET):
            response = self._call(
                "GET",
                f"/v1/projects/{urllib.parse.quote(self.project, safe='')}/spans",
                params={"span_id": list(part), "limit": MAX_IDS_PER_GET},
            )
            if response.status_code != 200:
                return found  # unknown project: the confirmed path will say what is wrong
            for span in response.json().get("data", []):
                found.add(span["context"]["span_id"])
        return found

    def _known(self, batch: Sequence[Annotation]) -> set[str]:
        """The span ids of a batch that exist: a sample is checked first (always the last
        id, which ``_confirm`` waits for), and only if one of those is missing, all of them."""
        ids = list(dict.fromkeys(a.target_id for a in batch))
        sample = probe_sample(ids)
        found = self._existing_spans(sample)
        if len(found) == len(sample):
            return set(ids)
        return found if len(sample) == len(ids) else self._existing_spans(ids)

    def _send_queued(
        self,
        fast: Sequence[Annotation],
        index: Mapping[int, int],
        outcomes: dict[int, Outcome],
        done: Progress,
    ) -> list[Annotation]:
        """Queue batches (sync=false) of annotations on spans that exist, each read back once
        it landed; the next batch is queued while the one before is inserted, with at most
        ``max_unconfirmed`` rows unconfirmed.

        :returns: the annotations not confirmed (for the synchronous path).
        """
        size = max(1, min(self.config.batch_size, self.config.max_unconfirmed))
        queued: deque[tuple[Sequence[Annotation], float]] = deque()
        unconfirmed = 0
        left: list[Annotation] = []

        def settle_oldest() -> None:
            nonlocal unconfirmed
            batch, posted_at = queued.popleft()
            unconfirmed -= len(batch)
            confirmed = self._confirm(batch, posted_at)
            for a in batch:
                if id(a) in confirmed:
                    outcomes[index[id(a)]] = confirmed[id(a)]
                else:
                    left.append(a)
            done(len(confirmed))

        for candidates in chunks(fast, size):
            known = self._known(candidates)
            batch = [a for a in candidates if a.target_id in known]
            left.extend(a for a in candidates if a.target_id not in known)
            if not batch:
                continue
            while queued and unconfirmed + len(batch) > self.config.max_unconfirmed:
                settle_oldest()
            response = self._call(
                "POST",
                "/v1/span_annotations",
                params={"sync": "false"},
                json={"data": [self.payload(a) for a in batch]},
            )
            if response.status_code == 200:
                queued.append((batch, self._clock()))
                unconfirmed += len(batch)
            else:
                left.extend(batch)
        while queued:
            settle_oldest()
        return left

    def _confirm(self, sent: Sequence[Annotation], posted_at: float) -> dict[int, Outcome]:
        """Read a queued batch back: the rows stored as sent are confirmed.

        Phoenix's queue inserts in order, taking all it holds at each flush, so once the
        batch's last row (on a span known to exist) is stored, every row of the batch that
        will land has: one read of the whole batch then settles it, and a row still missing
        (a span sampled as existing that does not, a failed insert) goes to the synchronous
        path at once. Until then only that last row is looked for, which costs the server
        little. If it never shows, the batch is read back until ``confirm_timeout``.
        """
        pending = {(a.target_id, a.name, a.identifier): a for a in sent}
        expected = {key: _result(a) for key, a in pending.items()}
        confirmed: dict[int, Outcome] = {}
        deadline = posted_at + self.config.confirm_timeout
        last = sent[-1]
        last_key = (last.target_id, last.name, last.identifier)
        patience = min(deadline, posted_at + LAST_ROW_PATIENCE)
        delay = FIRST_LOOK
        landed = False
        while not landed:
            self._sleep(delay)
            stored = self._stored({last_key: last}).get(last_key)
            landed = stored is not None and _same_result(expected[last_key], stored[1])
            if self._clock() >= patience:
                break
            delay = min(delay * 1.5, MAX_LOOK_INTERVAL)
        delay = 0.3
        while True:
            for key, (remote_id, result) in self._stored(pending).items():
                if key in pending and _same_result(expected[key], result):
                    confirmed[id(pending.pop(key))] = Outcome.ok(remote_id)
            if landed or not pending or self._clock() >= deadline:
                return confirmed
            self._sleep(delay)
            delay = min(delay * 1.5, 2.0)

    def _stored(
        self, pending: Mapping[tuple[str, str, str], Annotation]
    ) -> dict[tuple[str, str, str], tuple[str, dict[str, Any] | None]]:
        """The annotations Phoenix holds now for these spans and names."""
        names = sorted({k[1] for k in pending})
        span_ids = sorted({k[0] for k in pending})
        stored: dict[tuple[str, str, str], tuple[str, dict[str, Any] | None]] = {}
        for row in self._annotations("span", span_ids, names, strict=False):
            key = (row["span_id"], row["name"], row.get("identifier") or "")
            stored[key] = (row["id"], row.get("result"))
        return stored

    def _annotations(
        self, kind: str, ids: Sequence[str], names: Sequence[str], *, strict: bool
    ) -> Iterator[dict[str, Any]]:
        """Every annotation with one of ``names`` on these records: one GET per 1000 ids and
        page. A 404 (none of the records is in the project yet) gives none; another refusal
        ends the read of those ids, or with ``strict`` raises ConfigError."""
        path = f"/v1/projects/{urllib.parse.quote(self.project, safe='')}/{kind}_annotations"
        for part in chunks(ids, MAX_IDS_PER_GET):
            cursor: str | None = None
            while True:
                params: dict[str, Any] = {
                    f"{kind}_ids": list(part),
                    "include_annotation_names": list(names),
                    "limit": 10_000,
                }
                if cursor:
                    params["cursor"] = cursor
                response = self._call("GET", path, params=params)
                if response.status_code != 200:
                    if strict and response.status_code != 404:
                        raise ConfigError(
                            f"Phoenix refused to list annotations ({response.status_code}: "
                            f"{_detail(response.text)})"
                        )
                    break
                body = response.json()
                yield from body.get("data", [])
                cursor = body.get("next_cursor")
                if not cursor:
                    break

    def _send_confirmed(self, batch: Sequence[Annotation]) -> dict[int, Outcome]:
        """POST with sync=true: the server answers an id per row, or names unknown ids."""
        out: dict[int, Outcome] = {}
        pending = list(batch)
        path = f"/v1/{self.kind}_annotations"
        while pending:
            response = self._call(
                "POST",
                path,
                params={"sync": "true"},
                json={"data": [self.payload(a) for a in pending]},
            )
            if response.status_code == 200:
                ids = [d.get("id", "") for d in response.json().get("data", [])]
                for a, remote_id in zip(pending, ids, strict=False):
                    out[id(a)] = Outcome.ok(remote_id)
                for a in pending[len(ids) :]:
                    out[id(a)] = Outcome.failed("Phoenix returned no id for this annotation")
                return out
            detail = response.text.strip()
            missing = self._missing_ids(response)
            if missing:
                rest = []
                for a in pending:
                    if a.target_id in missing:
                        out[id(a)] = Outcome.rejected(
                            f"Phoenix has no {a.kind} '{a.target_id}'; check the id (new traces "
                            "can take a few seconds to appear; the row is retried next run)"
                        )
                    else:
                        rest.append(a)
                if len(rest) == len(pending):  # pragma: no cover - server named ids we never sent
                    for a in pending:
                        out[id(a)] = Outcome.rejected(f"Phoenix: {detail[:300]}")
                    return out
                pending = rest
                continue
            if response.status_code in (400, 404, 409, 413, 422) and len(pending) > 1:
                # One row the server refuses must not sink the batch: split until it is alone.
                half = len(pending) // 2
                out.update(self._send_confirmed(pending[:half]))
                out.update(self._send_confirmed(pending[half:]))
                return out
            status = Status.REJECTED if 400 <= response.status_code < 500 else Status.FAILED
            for a in pending:
                out[id(a)] = Outcome(
                    status, f"Phoenix answered {response.status_code}: {_detail(detail)}"
                )
            return out
        return out

    def _missing_ids(self, response: requests.Response) -> set[str]:
        if response.status_code != 404:
            return set()
        text = response.text.strip()
        try:
            text = str(response.json().get("detail", text))
        except ValueError:
            pass
        m = _MISSING.search(text)
        return {p.strip() for p in m.group(1).split(",")} if m else set()

    # -- export and rules from the platform (optional Target methods) -------------------

    def export_records(self, query: ExportQuery) -> Iterator[ExportRecord]:
        """The project's root spans (every span with ``roots_only`` False), oldest first,
        page by page; for ``annotate: trace``, its traces (one per root span). Each record
        carries the names of ``query.names`` it already holds from ``query.annotator_kinds``.

        :raises ConfigError: unknown project, a filter Phoenix refuses, or ``annotate: session``.
        """
        if self.kind == "session":
            raise ConfigError(
                "export lists spans or traces; sessions cannot be exported yet: set "
                "target.annotate to span or trace to export, or fill the session ids by hand"
            )
        project = urllib.parse.quote(self.project, safe="")
        project_id = self._export_project_id()
        params: dict[str, Any] = {
            "limit": max(1, min(query.page_size, MAX_IDS_PER_GET)),
            "sort": "start_time",
            "order": "asc",
        }
        if query.roots_only or self.kind == "trace":
            params["parent_id"] = "null"
        if query.since is not None:
            params["start_time"] = query.since.isoformat()
        if query.until is not None:
            params["end_time"] = query.until.isoformat()
        if query.filters:
            params["attribute"] = list(query.filters)
        cursor: str | None = None
        while True:
            if cursor:
                params["cursor"] = cursor
            response = self._call("GET", f"/v1/projects/{project}/spans", params=params)
            if response.status_code != 200:
                raise ConfigError(
                    f"Phoenix refused to list the spans of project '{self.project}' "
                    f"({response.status_code}: {_detail(response.text)}); a --filter is "
                    "key:value on a span attribute, e.g. --filter metadata.tier:gold"
                )
            body = response.json()
            spans = [s for s in body.get("data", []) if isinstance(s, dict)]
            ids = [self._export_id(s) for s in spans]
            held = self._export_held(sorted(set(ids)), query)
            for span, rid in zip(spans, ids, strict=True):
                attributes = span.get("attributes") or {}
                context = span.get("context") or {}
                url = None
                if project_id and context.get("trace_id"):
                    url = (
                        f"{self.base_url}/projects/{urllib.parse.quote(project_id, safe='')}"
                        f"/traces/{urllib.parse.quote(context['trace_id'], safe='')}"
                    )
                    if span.get("id"):
                        url += "?selectedSpanNodeId=" + urllib.parse.quote(span["id"], safe="")
                yield ExportRecord(
                    record_id=rid,
                    input=_export_text(attributes.get("input.value")),
                    output=_export_text(attributes.get("output.value")),
                    start_time=_export_time(span.get("start_time")),
                    url=url,
                    annotated=frozenset(held.get(rid, ())),
                )
            cursor = body.get("next_cursor")
            if not cursor or not spans:
                return

    def projects_with_records(self, limit: int = 20) -> list[str]:
        """The other projects that hold spans (the first ``limit`` looked at): the hint when
        an export finds none in this one."""
        listing = self._call("GET", "/v1/projects", params={"limit": 100})
        if listing.status_code != 200:
            return []
        names = [str(p.get("name")) for p in listing.json().get("data", []) if p.get("name")]
        found = []
        for name in [n for n in names if n != self.project][:limit]:
            path = f"/v1/projects/{urllib.parse.quote(name, safe='')}/spans"
            response = self._call("GET", path, params={"limit": 1})
            if response.status_code == 200 and response.json().get("data"):
                found.append(name)
        return found

    def _export_id(self, span: Mapping[str, Any]) -> str:
        context = span.get("context") or {}
        return str(context.get("trace_id" if self.kind == "trace" else "span_id") or "")

    def _export_project_id(self) -> str | None:
        """The project's GlobalID (for links into Phoenix's UI)."""
        project = urllib.parse.quote(self.project, safe="")
        response = self._call("GET", f"/v1/projects/{project}")
        if response.status_code == 404:
            listing = self._call("GET", "/v1/projects", params={"limit": 100})
            names = []
            if listing.status_code == 200:
                names = [str(p.get("name")) for p in listing.json().get("data", [])]
            known = f" (projects: {', '.join(names)})" if names else ""
            raise ConfigError(
                f"Phoenix at {self.base_url} has no project '{self.project}'{known}; set "
                "target.project (or PHOENIX_PROJECT_NAME) to the project of the traces"
            )
        if response.status_code != 200:
            return None
        data = response.json().get("data") or {}
        return str(data["id"]) if data.get("id") else None

    def _export_held(self, ids: Sequence[str], query: ExportQuery) -> dict[str, set[str]]:
        """Which of ``query.names`` each record already holds (by the query's annotator kinds)."""
        held: dict[str, set[str]] = {}
        if not ids or not query.names:
            return held
        for row in self._annotations(self.kind, ids, query.names, strict=True):
            if row.get("annotator_kind") in query.annotator_kinds:
                rid = row.get(_ID_FIELD[self.kind])
                held.setdefault(str(rid), set()).add(str(row.get("name")))
        return held

    def fetch_rules(self, names: Sequence[str]) -> dict[str, PlatformRule]:
        """The rules of the Phoenix annotation configs with these names (absent: no config)."""
        found: dict[str, PlatformRule] = {}
        for name in names:
            response = self._call(
                "GET", f"/v1/annotation_configs/{urllib.parse.quote(name, safe='')}"
            )
            if response.status_code == 404:
                continue
            if response.status_code != 200:
                raise ConfigError(
                    f"Phoenix did not return the annotation config '{name}' "
                    f"({response.status_code}: {_detail(response.text)})"
                )
            found[name] = from_phoenix_config(response.json().get("data") or {})
        return found


def _export_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    import json

    return json.dumps(value, ensure_ascii=False)


def _export_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _detail(text: str) -> str:
    """The server's reason, short; pydantic's 422 detail reduced to its messages."""
    try:
        import json

        body = json.loads(text)
        detail = body.get("detail", body) if isinstance(body, dict) else body
        if isinstance(detail, list):
            return "; ".join(
                f"{'.'.join(str(x) for x in d.get('loc', [])[1:])}: {d.get('msg')}"
                for d in detail
                if isinstance(d, dict)
            )[:300]
        return str(detail)[:300]
    except ValueError:
        return text[:300]
