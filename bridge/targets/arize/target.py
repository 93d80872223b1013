"""Arize AX: human annotations through GraphQL ``updateAnnotations`` or REST ``/v2/spans/annotate``.

Arize is a hosted service that the machines annobridge is built on cannot reach: this package
follows the documented contract (the Annotations API page,
https://www.arize.com/docs/ax/resources/graphql-api/annotations-api, the REST reference,
https://www.arize.com/docs/api-reference/spans/annotate-a-batch-of-project-spans, and
``docs/platform-notes.md``, section "Arize"), and the tests check it against a local stand-in
that executes the documented GraphQL types.

This module is the adapter: it checks what both APIs share (the API key, the start time, two
rows writing one annotation) and hands the rest to ``mutations.GraphqlSender`` (``api:
graphql``, the default) or ``rest.RestSender`` (``api: rest``), over ``client.ArizeClient``.

Arize keeps one annotation per record and name (``updatedBy`` does not tell two apart): two
rows that would write the same one are both refused, as the rules do for exact duplicates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import requests

from bridge.errors import ConfigError, TargetUnreachable
from bridge.records import Annotation, Outcome
from bridge.targets.arize.client import AUTH_HINT, ArizeClient
from bridge.targets.arize.common import iso, record_start
from bridge.targets.arize.config import ArizeConfig
from bridge.targets.arize.mutations import GraphqlSender
from bridge.targets.arize.ratelimit import RateLimiter
from bridge.targets.arize.rest import RestSender
from bridge.targets.base import ChecksAnnotations, Locates, Progress, Target


class ArizeTarget(Target, ChecksAnnotations, Locates):
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
        self.config = config
        self.kind: str = config.record_kind()
        self.client = ArizeClient(config, session=session, env=env)
        self._now = now
        limiter = RateLimiter(config.mutations_per_minute, 60.0, clock=clock, sleep=sleep)
        self._limiter = limiter
        self._sender: GraphqlSender | RestSender = (
            GraphqlSender(config, self.client, limiter)
            if self.api == "graphql"
            else RestSender(config, self.client, self.kind, now)
        )
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

    @property
    def api(self) -> str:
        return self.client.api

    @property
    def base_url(self) -> str:
        return self.client.base_url

    @property
    def session(self) -> requests.Session:
        return self.client.session

    @session.setter
    def session(self, session: requests.Session) -> None:
        self.client.session = session

    @property
    def limiter(self) -> RateLimiter:
        """The GraphQL rate limiter (tests replace it)."""
        return self._limiter

    @limiter.setter
    def limiter(self, limiter: RateLimiter) -> None:
        self._limiter = limiter
        if isinstance(self._sender, GraphqlSender):
            self._sender.limiter = limiter

    # -- the Target interface -----------------------------------------------------------

    def fingerprint(self) -> str:
        c = self.config
        if self.api == "graphql":
            return f"arize|graphql|{self.base_url}|{c.model_id}|{c.environment}"
        return f"arize|rest|{self.base_url}|{c.project_id}|{c.granularity}"

    def where(self) -> tuple[str | None, str | None]:
        c = self.config
        return self.base_url, (c.model_id if self.api == "graphql" else c.project_id)

    def payload(self, a: Annotation) -> dict[str, Any]:
        """GraphQL: the variables of the documented mutation or the newer input; REST: the
        request body for this one record."""
        return self._sender.payload(a)

    def close(self) -> None:
        self.client.close()

    def check(self) -> None:
        if not self.client.api_key:
            raise ConfigError(f"ARIZE_API_KEY is not set; {AUTH_HINT}")
        c = self.config
        now = self._now()
        if c.start_time is not None and c.start_time > now:
            raise ConfigError(
                f"target.start_time {iso(c.start_time)} is in the future; Arize looks for "
                "records that start after it"
            )
        if isinstance(self._sender, RestSender):
            self._sender.check(now)
            return
        self._sender.check()

    def problems(self, a: Annotation) -> list[str]:
        """What the documented contract refuses in this annotation, before anything is sent."""
        out = self._sender.problems(a)
        if self.config.start_time_column:
            _, problem = record_start(self.config, a)
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
            self._sender.send(ready, outcomes, done)
        except TargetUnreachable as exc:
            if len(outcomes) == local:
                raise  # nothing reached Arize yet: the whole run is "unreachable" (exit 3)
            # Keep what Arize confirmed; the rest is retried next run (upserts: safe).
            lost = Outcome.failed(f"Arize stopped answering during the sync ({exc})")
            for i in range(len(annotations)):
                outcomes.setdefault(i, lost)
        return [outcomes[i] for i in range(len(annotations))]


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
