"""The Target interface: where annotations go, and what else a platform can do.

Every target has the core verbs of ``Target``. The optional capabilities are declared
protocols: an adapter lists the ones it has among its bases (``class PhoenixTarget(Target,
ExportsRecords, PullsRules)``), mypy checks the signatures, and the use cases ask
``isinstance(target, ExportsRecords)`` instead of probing for attributes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from bridge.records import (
    Annotation,
    ExportQuery,
    ExportRecord,
    JudgeLabel,
    Outcome,
    PlatformRule,
)

Progress = Callable[[int], None]
"""Called with the number of annotations just settled (synced, rejected or failed)."""


@runtime_checkable
class Target(Protocol):
    """A platform that stores annotations.

    ``send`` returns one Outcome per annotation, in order: synced with the platform's id,
    rejected with the platform's reason, or failed (retryable). It raises only when the
    platform cannot be used at all (unreachable, auth refused).
    """

    name: str
    kind: str

    def fingerprint(self) -> str:
        """Where annotations go (platform, server, project): part of every row's sync_hash."""
        ...

    def payload(self, annotation: Annotation) -> dict[str, Any]:
        """The JSON the platform receives for one annotation (shown by --dry-run)."""
        ...

    def check(self) -> None:
        """Fail fast, before anything is sent, when the platform is unreachable or refuses us."""
        ...

    def send(
        self, annotations: Sequence[Annotation], progress: Progress | None = None
    ) -> list[Outcome]: ...

    def close(self) -> None: ...


@runtime_checkable
class ChecksAnnotations(Protocol):
    """Knows, before sending, what the platform documents it would refuse."""

    def problems(self, annotation: Annotation) -> list[str]:
        """Why the platform would refuse this annotation, in an SME's words (empty: none)."""
        ...


@runtime_checkable
class ExportsRecords(Protocol):
    """Lists the platform's records (spans, traces) so that export can put them in a sheet."""

    def export_records(self, query: ExportQuery) -> Iterator[ExportRecord]: ...


@runtime_checkable
class KnowsProjects(Protocol):
    """A target that can name its other projects that hold records (export's hint)."""

    def projects_with_records(self, limit: int = 20) -> list[str]: ...


@runtime_checkable
class PullsRules(Protocol):
    """Reads the annotation rules (labels, score bounds) from the platform's own configs."""

    def fetch_rules(self, names: Sequence[str]) -> dict[str, PlatformRule]: ...


@runtime_checkable
class Retracts(Protocol):
    """Removes annotations annobridge sent, when an SME clears them in the sheet."""

    def retract(self, annotations: Sequence[Annotation]) -> list[Outcome]:
        """Remove, for each of these (name, record, identifier), the one annotation this
        row sent: never one another annotator or the app wrote. One Outcome each, in order:
        ``ok`` with the id removed, ``ok`` with an empty id when nothing was there (already
        removed), rejected or failed when it could not be removed."""
        ...


@runtime_checkable
class ReadsJudgeAnnotations(Protocol):
    """Reads back the LLM judges' annotations (to compare them with the humans')."""

    def judge_annotations(self, name: str, record_ids: Sequence[str]) -> dict[str, JudgeLabel]:
        """The LLM annotations named ``name`` on these records (by the sheet's record id);
        a record with none is absent."""
        ...


@runtime_checkable
class LinksRecords(Protocol):
    """Knows the address of a record in the platform's web app (the Disagreements tab's
    link column, where the sheet has none)."""

    def record_links(self, record_ids: Sequence[str]) -> dict[str, str]:
        """By the sheet's record id, the record's address in the platform's web app; an id it
        cannot link is absent.

        :raises BridgeError: the platform is needed to build the links and cannot be used."""
        ...


@runtime_checkable
class ReviewQueues(Protocol):
    """Has review queues: named lists of records to label, with assigned users (MLflow)."""

    def queue_records(self, name: str, query: ExportQuery) -> tuple[list[ExportRecord], list[str]]:
        """The queue's records still to review (pending), in its order, and its assigned
        users.

        :raises ConfigError: no queue of that name (naming the queues there are)."""
        ...

    def completion_queue(self) -> str | None:
        """The queue whose items a sync completes (the target config's), None: none."""
        ...

    def complete_queue_items(self, name: str, done: Sequence[tuple[str, str]]) -> int:
        """Mark the items of these (record id, annotator) complete, by that annotator (the
        first pair of a record wins); items already complete or not in the queue are left
        alone. Returns how many were marked."""
        ...


@runtime_checkable
class Locates(Protocol):
    """Can say where it writes, for people and machines (``--json``'s ``target``)."""

    def where(self) -> tuple[str | None, str | None]:
        """(the platform's URL, the place in it: the Phoenix project, MLflow experiment,
        Arize model or project, log10 task), None for what it has not."""
        ...


_URL_CREDENTIALS = re.compile(r"//[^/@\s]+@")  # as in bridge.http.redact


def describe(target: Target) -> dict[str, Any]:
    """Where a target writes: ``platform``, ``url`` (without credentials) and ``project``
    (None when the target does not say: one that is not ``Locates``)."""
    url, project = target.where() if isinstance(target, Locates) else (None, None)
    return {
        "platform": target.name,
        "url": _URL_CREDENTIALS.sub("//***@", url) if url else None,
        "project": project or None,
    }


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
