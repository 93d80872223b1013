"""Arize Phoenix: span, trace and session annotations over REST, with confirmed delivery.

Phoenix has two write modes (``docs/platform-notes.md``, section "Phoenix"; the REST API:
https://arize.com/docs/phoenix/sdk-api-reference/rest-api/overview):

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

Export (``export.py``) and rules (``rules.py``) share the client (``client.py``) and are
reached through ``PhoenixTarget.export_records`` and ``PhoenixTarget.fetch_rules``.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import requests

from bridge.errors import ConfigError, TargetUnreachable
from bridge.records import (
    Annotation,
    ExportQuery,
    ExportRecord,
    JudgeLabel,
    Outcome,
    PlatformRule,
    Status,
)
from bridge.targets.base import (
    ChecksAnnotations,
    ExportsRecords,
    LinksRecords,
    Locates,
    Progress,
    PullsRules,
    ReadsJudgeAnnotations,
    Retracts,
    Target,
    chunks,
)
from bridge.targets.phoenix import export, judge, links, notes, rules
from bridge.targets.phoenix import retract as retraction
from bridge.targets.phoenix.client import ID_FIELD, PhoenixClient, detail, result_of, same_result
from bridge.targets.phoenix.config import PhoenixConfig
from bridge.targets.phoenix.documents import DocumentSender, position_problem

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

_MISSING = re.compile(r"(?:Spans|Traces|Sessions) with IDs (.*) do not exist\.?$", re.S)


def _result(a: Annotation) -> dict[str, Any]:
    return result_of(a.label, a.score, a.explanation)


_same_result = same_result


def probe_sample(ids: Sequence[str], size: int = PROBE_SPANS) -> list[str]:
    """``size`` of the ids, evenly spread, always with the last one (all of them if fewer)."""
    if len(ids) <= size:
        return list(ids)
    step = (len(ids) - 1) / (size - 1)
    return [ids[round(i * step)] for i in range(size)]


class PhoenixTarget(
    Target,
    ChecksAnnotations,
    ExportsRecords,
    LinksRecords,
    Locates,
    PullsRules,
    ReadsJudgeAnnotations,
    Retracts,
):
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
        self.config = config
        # what the id column holds (a document annotation's is its span's id)
        self.kind: str = config.record_kind()
        self.client = PhoenixClient(config, session=session, env=env)
        self.documents = (
            DocumentSender(self.client, config.document_position_column, config.batch_size)
            if config.document_position_column
            else None
        )
        self._sleep = sleep
        self._clock = clock

    @property
    def base_url(self) -> str:
        return self.client.base_url

    @property
    def project(self) -> str:
        return self.client.project

    @property
    def session(self) -> requests.Session:
        return self.client.session

    def fingerprint(self) -> str:
        return f"phoenix|{self.base_url}|{self.config.annotate}"

    def where(self) -> tuple[str | None, str | None]:
        return self.base_url, self.project

    def payload(self, a: Annotation) -> dict[str, Any]:
        """What is sent for one annotation: its body, and its note's when it has one."""
        body = self.documents.payload(a) if self.documents else self._body(a)
        note = notes.note_of(a)
        if note:
            body["note"] = notes.note_payload(a, self.config.annotate, self._position(a))["data"]
        elif note == "" and a.is_update:  # the note cell was emptied: its note is deleted
            body["note"] = {"delete": notes.note_identifier(a, self._position(a))}
        return body

    def problems(self, a: Annotation) -> list[str]:
        if self.documents is None:
            return []
        column = self.documents.column
        found = position_problem(column, a.extra.get(column))
        return [found] if found else []

    def _position(self, a: Annotation) -> int | None:
        return self.documents.position_of(a) if self.documents else None

    def _body(self, a: Annotation) -> dict[str, Any]:
        return {
            ID_FIELD[a.kind]: a.target_id,
            "name": a.name,
            "annotator_kind": a.annotator_kind,
            "result": _result(a),
            "metadata": a.metadata,
            "identifier": a.identifier,
        }

    def close(self) -> None:
        self.client.close()

    def check(self) -> None:
        # the answer is read too: a sign-in page in front of Phoenix answers 200 as well
        self.client.items(self.client.call("GET", "/v1/projects", params={"limit": 1}))

    def send(
        self, annotations: Sequence[Annotation], progress: Progress | None = None
    ) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        done = progress or (lambda n: None)
        index = {id(a): i for i, a in enumerate(annotations)}
        slow: list[Annotation] = []
        fast: list[Annotation] = []
        if self.documents is not None:
            settled: dict[int, Outcome] = {}
            try:
                self.documents.send(annotations, done, settled)
            except TargetUnreachable as exc:
                if not settled:
                    raise  # nothing happened yet: the whole run is "unreachable" (exit 3)
                lost = Outcome.failed(f"Phoenix stopped answering during the sync ({exc})")
                settled.update((id(a), lost) for a in annotations if id(a) not in settled)
            notes.send_notes(self.client, "document", annotations, settled, self._position)
            return [settled[id(a)] for a in annotations]
        if self.kind == "span":
            for a in annotations:
                (slow if a.is_update else fast).append(a)
        else:
            slow = list(annotations)
        try:
            slow.extend(self._send_queued(fast, index, outcomes, done))
            for batch in chunks(slow, self.config.batch_size):
                confirmed = self._send_confirmed(batch)
                for a in batch:
                    outcomes[index[id(a)]] = confirmed[id(a)]
                done(len(batch))
        except TargetUnreachable as exc:
            if not outcomes:
                raise  # nothing happened yet: the whole run is "unreachable" (exit 3)
            # Part of the run is confirmed: keep it, and let the rest be retried next run.
            lost = Outcome.failed(f"Phoenix stopped answering during the sync ({exc})")
            for i in range(len(annotations)):
                outcomes.setdefault(i, lost)
        by_id = {id(a): outcomes[index[id(a)]] for a in annotations}
        notes.send_notes(self.client, self.kind, annotations, by_id, self._position)
        return [by_id[id(a)] for a in annotations]

    def _known(self, batch: Sequence[Annotation]) -> set[str]:
        """The span ids of a batch that exist: a sample is checked first (always the last
        id, which ``_confirm`` waits for), and only if one of those is missing, all of them."""
        ids = list(dict.fromkeys(a.target_id for a in batch))
        sample = probe_sample(ids)
        found = self.client.existing_spans(sample)
        if len(found) == len(sample):
            return set(ids)
        return found if len(sample) == len(ids) else self.client.existing_spans(ids)

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
            response = self.client.call(
                "POST",
                "/v1/span_annotations",
                params={"sync": "false"},
                json={"data": [self._body(a) for a in batch]},
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
        for row in self.client.annotations("span", span_ids, names, strict=False):
            key = (row["span_id"], row["name"], row.get("identifier") or "")
            stored[key] = (row["id"], row.get("result"))
        return stored

    def _send_confirmed(self, batch: Sequence[Annotation]) -> dict[int, Outcome]:
        """POST with sync=true: the server answers an id per row, or names unknown ids."""
        out: dict[int, Outcome] = {}
        pending = list(batch)
        path = f"/v1/{self.kind}_annotations"
        while pending:
            response = self.client.call(
                "POST",
                path,
                params={"sync": "true"},
                json={"data": [self._body(a) for a in pending]},
            )
            if response.status_code == 200:
                ids = [d.get("id", "") for d in self.client.items(response)[0]]
                for a, remote_id in zip(pending, ids, strict=False):
                    out[id(a)] = Outcome.ok(remote_id)
                for a in pending[len(ids) :]:
                    out[id(a)] = Outcome.failed("Phoenix returned no id for this annotation")
                return out
            text = response.text.strip()
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
                        out[id(a)] = Outcome.rejected(f"Phoenix: {text[:300]}")
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
                    status, f"Phoenix answered {response.status_code}: {detail(text)}"
                )
            return out
        return out

    def _missing_ids(self, response: requests.Response) -> set[str]:
        if response.status_code != 404:
            return set()
        text = response.text.strip()
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            text = str(body.get("detail", text))
        m = _MISSING.search(text)
        return {p.strip() for p in m.group(1).split(",")} if m else set()

    # -- export and rules from the platform (export.py, rules.py) ------------------------

    def export_records(self, query: ExportQuery) -> Iterator[ExportRecord]:
        return export.export_records(self.client, self.config.annotate, query)

    def projects_with_records(self, limit: int = 20) -> list[str]:
        """The other projects that hold spans (the first ``limit`` looked at): the hint when
        an export finds none in this one."""
        return export.projects_with_records(self.client, limit)

    def fetch_rules(self, names: Sequence[str]) -> dict[str, PlatformRule]:
        return rules.fetch_rules(self.client, names)

    def retract(self, annotations: Sequence[Annotation]) -> list[Outcome]:
        if self.documents is not None:
            return retraction.retract_documents(self.documents, annotations)
        return retraction.retract(self.client, self.kind, annotations)

    def judge_annotations(self, name: str, record_ids: Sequence[str]) -> dict[str, JudgeLabel]:
        if self.documents is not None:
            raise ConfigError(
                "an LLM judge's labels are read from span, trace and session annotations; "
                "with annotate: document there is nothing to compare yet: leave out --judge"
            )
        return judge.judge_annotations(self.client, self.kind, name, record_ids)

    def record_links(self, record_ids: Sequence[str]) -> dict[str, str]:
        """Phoenix's own redirect links (no request: see ``links``)."""
        return links.record_links(self.base_url, self.config.annotate, record_ids)
