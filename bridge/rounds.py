"""Labelling rounds, the use case: how much the SMEs agree, and whether the LLM judge does.

``measure`` reads the sheet with the same validation as a sync (invalid rows are left out and
counted), turns each valid annotation into a ``Rating`` (record, annotator, label, score, sheet
row), and hands them to ``bridge.agreement`` for the figures. With ``judge``, it reads the
platform's LLM annotations of that name on the same records (a target that declares
``ReadsJudgeAnnotations``) and compares them with the human majority. Unless told not to, it
replaces the two tabs annobridge owns, ``Agreement`` and ``Disagreements`` (a source that
declares ``WritesOwnedTabs``), and can write an HTML or PNG report.

Each disputed record gets a link to it on the platform: the sheet's own (the ``link`` column
export writes, when it holds a web address), else the target's (a target that declares
``LinksRecords``). Links are a convenience: a platform that cannot be reached leaves them
empty and says so in one message, and the figures stand (agreement works offline on a sheet).

Nothing is sent to the platform and no SME cell is written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bridge import agreement, rules
from bridge._gc import gc_paused
from bridge.agreement import Rating
from bridge.errors import BridgeError, ConfigError
from bridge.exporting import ExportColumns
from bridge.mapping import AnnotationSpec, MappingConfig
from bridge.pipeline import read_spec
from bridge.records import Row, Status, web_address
from bridge.registry import open_source, open_target
from bridge.sources._table import key_part
from bridge.sources.base import Source, WritesOwnedTabs
from bridge.targets.base import LinksRecords, ReadsJudgeAnnotations, Target

AGREEMENT_TAB = "Agreement"
DISAGREEMENTS_TAB = "Disagreements"
# the column export fills with each record's link: read when the sheet has it
LINK_COLUMN = ExportColumns().link


@dataclass
class RoundResult:
    """What ``measure`` found: the figures per annotation name (and the judge's), and what it
    left out and wrote."""

    mapping: str
    source: str
    rows: int = 0
    left_out: Counter[str] = field(default_factory=Counter)  # invalid / skipped rows
    results: list[agreement.Result] = field(default_factory=list)
    judge: str | None = None
    tabs_written: list[str] = field(default_factory=list)
    report: str | None = None
    messages: list[str] = field(default_factory=list)
    exit_code: int = 0
    # the disputed records' links on the platform, by record id (none: no link)
    links: dict[str, str] = field(default_factory=dict)
    # a record that is part of a platform record (a document of a span: "<span>#<position>")
    # -> the platform record its link is to
    linked_as: dict[str, str] = field(default_factory=dict)

    def link(self, record_id: str) -> str:
        return self.links.get(record_id, "")

    def to_json(self) -> dict[str, Any]:
        return {
            "mapping": self.mapping,
            "source": self.source,
            "rows": self.rows,
            "left_out": dict(self.left_out),
            "judge": self.judge,
            "results": [agreement.to_json(r, self.link) for r in self.results],
            "tabs_written": self.tabs_written,
            "report": self.report,
            "messages": self.messages,
            "exit_code": self.exit_code,
        }


def _annotator_check(mapping: MappingConfig) -> None:
    for i, spec in enumerate(mapping.annotations):
        if not spec.annotator_column:
            where = str(mapping.path or "the mapping")
            raise ConfigError(
                f"{where}: annotations[{i}] ('{spec.name}') has no annotator_column, so there "
                "is no telling who gave which label; add annotator_column (the sheet column "
                f"with each SME's name) to annotations[{i}]"
            )


def _ratings(
    mapping: MappingConfig, source: Source, result: RoundResult
) -> tuple[dict[str, list[agreement.Rating]], list[Row]]:
    rows = source.read(replace(read_spec(mapping), optional_columns=[LINK_COLUMN]))
    with gc_paused():
        return _rated(mapping, source, rows, result), rows


def _rated(
    mapping: MappingConfig, source: Source, rows: list[Any], result: RoundResult
) -> dict[str, list[agreement.Rating]]:
    target = mapping.target
    identity = target.identity_columns()
    verdicts = rules.evaluate(
        rows,
        mapping.annotations,
        target.record_kind(),
        source.label,
        type(target).ID_PATTERNS,
        identity,
    )
    result.rows = len(rows)
    by_name: dict[str, list[agreement.Rating]] = {a.name: [] for a in mapping.annotations}
    for row, verdict in zip(rows, verdicts, strict=True):
        if verdict.problems:
            result.left_out[str(Status.INVALID)] += 1
            continue
        if verdict.skipped or not verdict.annotations:
            result.left_out[str(Status.SKIPPED)] += 1
            continue
        suffix = ""
        if identity:  # one record per document: "<span id>#<position>"
            parts = [key_part(row.values.get(c)) for c in identity]
            if not all(parts):
                result.left_out[str(Status.INVALID)] += 1  # no telling which document
                continue
            suffix = "".join(f"#{part}" for part in parts)
        for a in verdict.annotations:
            rid = a.target_id + suffix
            if suffix:
                result.linked_as[rid] = a.target_id
            by_name[a.name].append(Rating(rid, a.annotator or "", a.label, a.score, row.sheet_row))
    return by_name


def _judged_spec(mapping: MappingConfig, judge: str) -> AnnotationSpec:
    specs = {a.name: a for a in mapping.annotations}
    if judge in specs:
        return specs[judge]
    if len(specs) == 1:
        return next(iter(specs.values()))
    raise ConfigError(
        f"--judge {judge}: the mapping labels {', '.join(sorted(specs))}; name the one the "
        "judge's annotations are to be compared with (the judge's annotation name must be one "
        "of them when the mapping has several)"
    )


def measure(
    mapping: MappingConfig,
    *,
    judge: str | None = None,
    write_tabs: bool = True,
    report: Path | None = None,
    score_level: agreement.ScoreLevel = "interval",
    source: Source | None = None,
    target: Target | None = None,
) -> RoundResult:
    """Agreement between the annotators of a sheet, and of the LLM judge ``judge`` with them.

    :param judge: the name of the LLM annotations to read from the platform.
    :param write_tabs: replace the ``Agreement`` and ``Disagreements`` tabs.
    :param report: an ``.html`` or ``.png`` file with the figures and confusion heatmaps.
    :raises ConfigError: no annotator column, a report of another kind, a medium that
        cannot hold the tabs (say ``--no-write``), a platform that cannot give the judge's
        annotations.
    """
    _annotator_check(mapping)
    identity = mapping.target.identity_columns()
    if identity and judge is not None:
        raise ConfigError(
            f"--judge {judge}: these annotations are told apart by {', '.join(identity)} as "
            "well (one per document), and reading an LLM judge's document annotations back is "
            "not supported yet; run agreement without --judge"
        )
    if report is not None and report.suffix.lower() not in agreement.REPORT_SUFFIXES:
        raise ConfigError(
            f"--report {report}: write an .html or a .png file (the figures and heatmaps)"
        )
    own_source = source is None
    source = source or open_source(mapping)
    try:
        tabs: WritesOwnedTabs | None = None
        if write_tabs:
            if not isinstance(source, WritesOwnedTabs):
                raise ConfigError(
                    f"{source.label} cannot hold the {AGREEMENT_TAB} and {DISAGREEMENTS_TAB} "
                    "tabs (a CSV file has one sheet); pass --no-write, or use an Excel "
                    "workbook or a Google Sheet"
                )
            tabs = source
        result = RoundResult(mapping=str(mapping.path or ""), source=source.label, judge=judge)
        by_name, rows = _ratings(mapping, source, result)
        for name, ratings in by_name.items():
            result.results.append(agreement.agreement(name, ratings, score_level=score_level))
        platform = _Platform(mapping, target)
        try:
            if judge is not None:
                _compare_judge(mapping, judge, by_name, result, platform.target())
            _link(result, rows, platform)
        finally:
            platform.close()
        if tabs is not None:
            tabs.replace_tab(AGREEMENT_TAB, agreement.agreement_rows(result.results))
            tabs.replace_tab(
                DISAGREEMENTS_TAB, agreement.disagreement_rows(result.results, result.link)
            )
            result.tabs_written = [AGREEMENT_TAB, DISAGREEMENTS_TAB]
        if report is not None:
            agreement.write_report(result.results, report, result.link)
            result.report = str(report)
        return result
    finally:
        if own_source:
            source.close()


class _Platform:
    """The mapping's target, opened once on first use (the judge's and the links'), unless
    one was given; closed by ``close`` only when opened here."""

    def __init__(self, mapping: MappingConfig, given: Target | None) -> None:
        self._mapping = mapping
        self._target = given
        self._own = False

    def target(self) -> Target:
        if self._target is None:
            self._target = open_target(self._mapping)
            self._own = True
        return self._target

    def close(self) -> None:
        if self._own and self._target is not None:
            self._target.close()


def _link(result: RoundResult, rows: Sequence[Row], platform: _Platform) -> None:
    """``result.links`` for every disputed record: the sheet's link (the first row of the
    record that holds a web address in the link column), else the target's."""
    disputed: dict[str, tuple[int, ...]] = {}
    for r in result.results:
        for d in r.disagreements:
            disputed[d.record_id] = disputed.get(d.record_id, ()) + tuple(d.sheet_rows)
    if not disputed:
        return
    in_sheet: dict[int, str] = {}
    if any(LINK_COLUMN in row.values for row in rows[:1]):  # the sheet has the column
        wanted = {n for sheet_rows in disputed.values() for n in sheet_rows}
        for row in rows:
            if row.sheet_row in wanted:
                url = web_address(row.values.get(LINK_COLUMN))
                if url:
                    in_sheet[row.sheet_row] = url
    missing: list[str] = []
    for rid, sheet_rows in disputed.items():
        url = next((in_sheet[n] for n in sorted(sheet_rows) if n in in_sheet), None)
        if url:
            result.links[rid] = url
        else:
            missing.append(rid)
    if not missing:
        return
    try:
        target = platform.target()
        if isinstance(target, LinksRecords):
            on_platform = {rid: result.linked_as.get(rid, rid) for rid in missing}
            found = target.record_links(list(dict.fromkeys(on_platform.values())))
            result.links.update(
                (rid, found[at]) for rid, at in on_platform.items() if found.get(at)
            )
    except BridgeError as exc:
        result.messages.append(
            f"no links to {len(missing)} disputed records on the platform ({exc}); the "
            f"figures stand: add a {LINK_COLUMN} column to the sheet, or run again when "
            "the platform can be reached"
        )


def _compare_judge(
    mapping: MappingConfig,
    judge: str,
    by_name: dict[str, list[agreement.Rating]],
    result: RoundResult,
    target: Target,
) -> None:
    spec = _judged_spec(mapping, judge)
    human = by_name.get(spec.name, [])
    ids = list(dict.fromkeys(r.record_id for r in human))
    if not isinstance(target, ReadsJudgeAnnotations):
        raise ConfigError(
            f"annobridge cannot read LLM annotations back from {target.name}: --judge works "
            "with Phoenix (annotator_kind LLM) and MLflow (source type LLM_JUDGE)"
        )
    found = target.judge_annotations(judge, ids) if ids else {}
    verdicts = {
        rid: agreement.JudgeVerdict(label=j.label, score=j.score, explanation=j.explanation)
        for rid, j in found.items()
    }
    if not verdicts:
        result.messages.append(
            f"no LLM annotation named '{judge}' on the {len(ids)} records labelled in "
            f"{result.source}: check the judge's annotation name, or run the judge first"
        )
        result.exit_code = 1
    result.results.append(agreement.judge_vs_human(spec.name, human, verdicts))
