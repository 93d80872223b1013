"""MLflow: human labels as assessments (feedback or expectations) on traces, over REST.

What the server does (``docs/platform-notes.md``, section "MLflow"; the REST API:
https://mlflow.org/docs/latest/api_reference/rest-api.html), and what annobridge does
about it:

- There is no batch endpoint and no upsert: ``POST /traces/{id}/assessments`` stores a
  second copy of the same label. annobridge chooses each ``assessment_id`` itself, a hash of
  (trace, name, annotator) that is stable for a row's annotation, so a create that is retried
  after a timeout meets the first one (MLflow answers 500 "constraint violation"; we read it
  back and reconcile) instead of adding a duplicate.
- A new row is POSTed, an edited row (one with a sync_hash) is PATCHed in place, with a
  camelCase ``update_mask`` (a snake_case mask answers 200 and changes nothing); each answer
  says when that guess was wrong (404: create; 409: read back and reconcile; a source or
  kind that PATCH cannot change: delete and create again, with the same id). Rows by
  ``client_request_id`` are resolved first, in bulk (``traces/search`` with ``IN (...)``,
  within the experiment), and that answer carries the assessments the traces hold: a label
  already there as sent costs no request.
- The server stores bad input silently: an unknown source type becomes UNSPECIFIED, a
  non-string metadata value drops the metadata, an expectation's rationale is dropped, and
  names and source ids longer than 250 characters fail only on Postgres and MySQL. All of
  that is checked here, and every write is compared with what the server answered.
- Writes go through a bounded thread pool: one request per label, ``concurrency`` at once.

This module sends; the package has the rest: ``client`` (connection, session, paged
searches), ``values`` (labels as assessment values, with no I/O), ``ids`` (request ids to
traces), ``export`` and ``rules`` (reached through ``MlflowTarget.export_records`` and
``MlflowTarget.fetch_rules``).
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bridge import http
from bridge.errors import MappingError, TargetUnreachable
from bridge.mapping import AnnotationSpec
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
    ReviewQueues,
    Target,
)
from bridge.targets.mlflow import export, ids, judge, links, queues, rules
from bridge.targets.mlflow import retract as retraction
from bridge.targets.mlflow.client import (
    API,
    API2,
    Connection,
    MlflowClient,
    connection_from_env,
    error_message,
    open_session,
)
from bridge.targets.mlflow.config import MlflowConfig
from bridge.targets.mlflow.values import (
    MAX_NAME,
    ValueRule,
    assessment_body,
    config_rules,
    differences,
    schema_rule,
)

# Writes that fail one after the other (each after its own retries) before the run stops
# sending: one bad answer fails its row; this many in a row means MLflow is down.
STOP_AFTER_FAILURES = 8


@dataclass
class _Write:
    """One annotation on its way: the body to send and what the server holds already."""

    index: int
    annotation: Annotation
    trace_id: str
    body: dict[str, Any]
    known: bool = False  # whether ``stored`` was read from the server
    stored: dict[str, Any] | None = None


class MlflowTarget(
    Target,
    ChecksAnnotations,
    ExportsRecords,
    LinksRecords,
    Locates,
    PullsRules,
    ReadsJudgeAnnotations,
    Retracts,
    ReviewQueues,
):
    """Assessments on an MLflow tracking server.

    :param config: the mapping's ``target`` section.
    :param specs: the mapping's annotation entries (their rules feed pass/fail labels).
    :param mapping_path: the mapping file, named in configuration errors.
    :param session: an HTTP session (tests inject one); built from the env otherwise.
    :param env: where MLFLOW_* variables are read from (default: os.environ).
    """

    name = "mlflow"

    def __init__(
        self,
        config: MlflowConfig,
        *,
        specs: Sequence[AnnotationSpec] = (),
        mapping_path: Path | str | None = None,
        session: requests.Session | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        environ = os.environ if env is None else env
        self.config = config
        self.kind: str = config.record_kind()
        connection = connection_from_env(config.url, environ)
        experiment = (
            config.experiment
            or environ.get("MLFLOW_EXPERIMENT_NAME", "").strip()
            or environ.get("MLFLOW_EXPERIMENT_ID", "").strip()
            or None
        )
        self._path = mapping_path or "the mapping"
        self._check_config(specs, experiment)
        self._rules = config_rules(config, specs)
        self.client = MlflowClient(
            connection,
            experiment,
            session
            or open_session(connection, timeout=config.timeout, concurrency=config.concurrency),
        )
        self._schemas_loaded = False

    @property
    def connection(self) -> Connection:
        return self.client.connection

    @property
    def base_url(self) -> str:
        return self.client.base_url

    @property
    def experiment(self) -> str | None:
        return self.client.experiment

    @property
    def session(self) -> requests.Session:
        return self.client.session

    # -- configuration ------------------------------------------------------------------

    def _check_config(self, specs: Sequence[AnnotationSpec], experiment: str | None) -> None:
        names = {s.name for s in specs}
        for i, spec in enumerate(specs):
            if len(spec.name) > MAX_NAME:
                raise MappingError(
                    self._path,
                    f"the name is {len(spec.name)} characters; MLflow keeps at most {MAX_NAME}",
                    key=f"annotations[{i}].name",
                )
        if specs:
            for key, listed in (
                ("values", self.config.values),
                ("pass_fail", self.config.pass_fail),
                ("expectations", self.config.expectations),
            ):
                for name in listed:
                    if name not in names:
                        raise MappingError(
                            self._path,
                            f"'{name}' is not the name of an annotation in this mapping "
                            f"(known: {', '.join(sorted(names))})",
                            key=f"target.{key}",
                        )
        need = []
        if self.config.id_kind == "client_request_id":
            need.append("id_kind: client_request_id")
        if self.config.label_schemas:
            need.append("label_schemas: true")
        if self.config.review_queue:
            need.append("review_queue")
        if need and not experiment:
            raise MappingError(
                self._path,
                f"{' and '.join(need)} need the experiment: set target.experiment (its name "
                "or id) or MLFLOW_EXPERIMENT_NAME",
                key="target.experiment",
            )

    def fingerprint(self) -> str:
        settings = json.dumps(
            [
                self.config.values,
                self.config.pass_fail,
                sorted(self.config.expectations),
                self.config.label_schemas,
            ],
            sort_keys=True,
        )
        digest = hashlib.sha256(settings.encode()).hexdigest()[:8]
        return (
            f"mlflow|{http.redact(self.base_url)}|{self.experiment or ''}|"
            f"{self.config.id_kind}|{digest}"
        )

    def where(self) -> tuple[str | None, str | None]:
        return self.base_url, self.experiment

    def close(self) -> None:
        self.session.close()

    def check(self) -> None:
        if self.experiment:
            self.client.experiment_id()
        else:
            answer = self.client.call("POST", f"{API2}/experiments/search", json={"max_results": 1})
            if answer.status_code == 200:  # a sign-in page in front answers 200 as well
                self.client.json_object(answer)
        self._load_schemas()

    # -- rules from the platform ----------------------------------------------------------

    def _load_schemas(self) -> None:
        """Take value types, options and ranges from the experiment's label schemas."""
        if self._schemas_loaded or not self.config.label_schemas:
            return
        for schema in rules.label_schemas(self.client):
            name = schema.get("name", "")
            if name in self._rules:
                self._rules[name] = schema_rule(
                    name, schema, self._rules[name], self.config, self._path
                )
        self._schemas_loaded = True

    # -- what is sent ---------------------------------------------------------------------

    def _rule(self, name: str) -> ValueRule:
        return self._rules.get(name) or ValueRule(
            kind="expectation" if name in self.config.expectations else "feedback"
        )

    def _body(self, a: Annotation, trace_id: str | None) -> tuple[dict[str, Any], str | None]:
        """The assessment for one annotation, or why it cannot be sent as it is."""
        return assessment_body(a, self._rule(a.name), self.config.id_kind, trace_id)

    def problems(self, a: Annotation) -> list[str]:
        """What MLflow would store wrongly or not at all, found before anything is sent.

        The pipeline marks such rows invalid: a value that does not fit its type or label
        schema, an unknown annotator kind (stored as UNSPECIFIED), an annotator longer than
        MLflow's column.
        """
        self._load_schemas()
        return [problem] if (problem := self._body(a, None)[1]) else []

    def payload(self, a: Annotation) -> dict[str, Any]:
        self._load_schemas()
        by_trace = self.config.id_kind == "trace_id"
        body, problem = self._body(a, a.target_id if by_trace else None)
        where = {"trace_id" if by_trace else "client_request_id": a.target_id}
        if problem:
            return {**where, "problem": problem}
        return {**where, "assessment": body}

    # -- sending --------------------------------------------------------------------------

    def send(
        self, annotations: Sequence[Annotation], progress: Progress | None = None
    ) -> list[Outcome]:
        done = progress or (lambda n: None)
        outcomes: dict[int, Outcome] = {}
        self._load_schemas()
        traces, refused = ids.resolve(self.client, self.config.id_kind, annotations)
        writes: list[_Write] = []
        claimed: dict[str, int] = {}
        for i, a in enumerate(annotations):
            if i in refused:
                outcomes[i] = Outcome.rejected(refused[i])
                continue
            info = traces.get(a.target_id)
            trace_id = str(info["trace_id"]) if info else a.target_id
            body, problem = self._body(a, trace_id)
            if problem:
                outcomes[i] = Outcome.rejected(problem)
                continue
            aid = body["assessment_id"]
            if aid in claimed:  # two rows, one assessment: the sheet must say which wins
                outcomes[i] = Outcome.rejected(
                    f"another row writes the same '{a.name}' on trace {trace_id} by the same "
                    f"annotator (row {annotations[claimed[aid]].metadata.get('row', '?')}); "
                    "keep one of them"
                )
                continue
            claimed[aid] = i
            w = _Write(i, a, trace_id, body)
            if info is not None:
                w.known = True
                held = {s.get("assessment_id"): s for s in info.get("assessments") or []}
                w.stored = held.get(aid)
                if w.stored is not None and not differences(body, w.stored):
                    outcomes[i] = Outcome.ok(aid)  # already there as sent: nothing to send
                    continue
            writes.append(w)
        if outcomes:
            done(len(outcomes))
        for w, outcome in self._run(writes, done):
            outcomes[w.index] = outcome
        return [outcomes[i] for i in range(len(annotations))]

    def _run(self, writes: Sequence[_Write], done: Progress) -> list[tuple[_Write, Outcome]]:
        """Write through a bounded pool, ``concurrency`` requests in flight.

        If MLflow stops answering after some writes landed, those are kept and the rest end
        failed (retried next run); if nothing landed, the run is "unreachable" (exit 3).
        Auth refusals always stop the run.
        """
        results: dict[int, Outcome] = {}
        lost: TargetUnreachable | None = None
        failures_in_a_row = 0
        queue = iter(writes)
        in_flight: dict[Future[Outcome], _Write] = {}
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:

            def refill() -> None:
                # a window, not everything at once: waiting on n futures costs O(n) each time
                while lost is None and len(in_flight) < 2 * self.config.concurrency:
                    w = next(queue, None)
                    if w is None:
                        return
                    in_flight[pool.submit(self._write, w)] = w

            try:
                refill()
                while in_flight:
                    finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    landed = 0
                    for f in finished:
                        w = in_flight.pop(f)
                        try:
                            results[w.index] = f.result()
                            landed += 1
                            failures_in_a_row = 0
                        except TargetUnreachable as exc:
                            # One write that failed after its retries fails its row only
                            # (retried next run, safe: the id is ours); many in a row mean
                            # MLflow is down: stop sending, keep draining what is in flight.
                            failures_in_a_row += 1
                            if exc.refused or failures_in_a_row >= STOP_AFTER_FAILURES:
                                lost = lost or exc
                            else:
                                results[w.index] = Outcome.failed(str(exc))
                    done(landed)
                    refill()
            except BaseException:
                for f in in_flight:
                    f.cancel()
                raise
        if lost is not None:
            if all(o.status == Status.FAILED for o in results.values()):
                raise lost  # nothing landed: the run is "unreachable", exit 3
            gone = Outcome.failed(f"MLflow stopped answering during the sync ({lost})")
            for w in writes:
                results.setdefault(w.index, gone)
        return [(w, results[w.index]) for w in writes]

    def _write(self, w: _Write) -> Outcome:
        """Create, update or replace one assessment so that it holds ``w.body``.

        When the server's state was not read first (trace ids), a new row is created and an
        edited row is PATCHed; each answer says what to do if that guess was wrong.
        """
        if not w.known:
            return self._update(w) if w.annotation.is_update else self._create(w)
        if w.stored is None:
            return self._create(w)
        if {"kind", "source"} & set(differences(w.body, w.stored)):
            return self._replace(w)
        return self._update(w)

    def _path_for(self, w: _Write, aid: str | None = None) -> str:
        tid = urllib.parse.quote(w.trace_id, safe="")
        base = f"{API}/traces/{tid}/assessments"
        return f"{base}/{urllib.parse.quote(aid, safe='')}" if aid else base

    def _create(self, w: _Write, again: bool = True) -> Outcome:
        response = self.client.call("POST", self._path_for(w), json={"assessment": w.body})
        if response.status_code == 200:
            return self._confirm(w, self.client.member(response, "assessment"))
        if response.status_code == 409 and again:
            # it exists: an earlier attempt landed (a retry after a timeout, a lost status)
            got = self.client.call("GET", self._path_for(w, w.body["assessment_id"]))
            if got.status_code == 200:
                w.known, w.stored = True, self.client.member(got, "assessment")
                if w.stored is not None and not differences(w.body, w.stored):
                    return Outcome.ok(w.body["assessment_id"])
                return self._write(w)
            return Outcome.failed(
                f"MLflow refused assessment id {w.body['assessment_id']} as taken but does not "
                f"show it on trace {w.trace_id} ({got.status_code})"
            )
        return self._refused(w, response)

    def _update(self, w: _Write) -> Outcome:
        kind = "expectation" if "expectation" in w.body else "feedback"
        patch: dict[str, Any] = {kind: w.body[kind], "metadata": w.body["metadata"]}
        mask = [kind, "metadata"]
        if kind == "feedback":
            patch["rationale"] = w.body.get("rationale", "")
            mask.append("rationale")
        response = self.client.call(
            "PATCH",
            self._path_for(w, w.body["assessment_id"]),
            # camelCase paths: MLflow answers 200 to snake_case ones and changes nothing
            json={"assessment": patch, "update_mask": ",".join(mask)},
        )
        if response.status_code == 200:
            stored = self.client.member(response, "assessment")
            if not w.known and "source" in differences(w.body, stored):
                w.known, w.stored = True, stored  # the annotator kind changed: replace it
                return self._replace(w)
            return self._confirm(w, stored)
        if response.status_code == 404:  # not there (new trace id, or deleted): create it
            return self._create(w, again=w.known)
        if response.status_code == 400 and "Cannot update" in error_message(response):
            return self._replace(w)  # feedback <-> expectation
        return self._refused(w, response)

    def _replace(self, w: _Write) -> Outcome:
        """Source and kind cannot be PATCHed: delete and create again, with the same id."""
        response = self.client.call("DELETE", self._path_for(w, w.body["assessment_id"]))
        if response.status_code != 200:
            return self._refused(w, response)
        w.known, w.stored = True, None
        return self._create(w, again=False)

    def _confirm(self, w: _Write, stored: Mapping[str, Any]) -> Outcome:
        """The server answers with what it stored: it must be what we sent."""
        wrong = differences(w.body, stored)
        if wrong:
            return Outcome.rejected(
                f"MLflow stored a different {', '.join(wrong)} than was sent; check the "
                f"assessment {w.body['assessment_id']} on trace {w.trace_id}"
            )
        return Outcome.ok(str(stored.get("assessment_id") or w.body["assessment_id"]))

    def _refused(self, w: _Write, response: requests.Response) -> Outcome:
        detail = error_message(response)
        if response.status_code == 404 and "Trace with ID" in detail:
            return Outcome.rejected(
                f"MLflow has no trace '{w.trace_id}'; check the id (copy it from the trace in "
                "the MLflow UI; the row is retried next run)"
            )
        if 400 <= response.status_code < 500:
            return Outcome.rejected(f"MLflow answered {response.status_code}: {detail}")
        return Outcome.failed(f"MLflow answered {response.status_code}: {detail}")

    # -- export and rules from the platform (export.py, rules.py) ------------------------

    def export_records(self, query: ExportQuery) -> Iterator[ExportRecord]:
        return export.export_records(self.client, self.config.id_kind, query)

    def fetch_rules(self, names: Sequence[str]) -> dict[str, PlatformRule]:
        return rules.fetch_rules(self.client, names)

    def retract(self, annotations: Sequence[Annotation]) -> list[Outcome]:
        return retraction.retract(self.client, self.config.id_kind, annotations)

    def judge_annotations(self, name: str, record_ids: Sequence[str]) -> dict[str, JudgeLabel]:
        return judge.judge_annotations(self.client, self.config.id_kind, name, record_ids)

    def record_links(self, record_ids: Sequence[str]) -> dict[str, str]:
        return links.record_links(self.client, self.config.id_kind, record_ids)

    def queue_records(self, name: str, query: ExportQuery) -> tuple[list[ExportRecord], list[str]]:
        return queues.queue_records(self.client, self.config.id_kind, name, query)

    def completion_queue(self) -> str | None:
        return self.config.review_queue

    def complete_queue_items(self, name: str, done: Sequence[tuple[str, str]]) -> int:
        return queues.complete(self.client, self.config.id_kind, name, done)
