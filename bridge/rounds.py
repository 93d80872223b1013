"""Labelling rounds, the use case: how much the SMEs agree, and whether the LLM judge does.

``measure`` reads the sheet with the same validation as a sync (invalid rows are left out and
counted), turns each valid annotation into a ``Rating`` (record, annotator, label, score, sheet
row), and hands them to ``bridge.agreement`` for the figures. With ``judge``, it reads the
platform's LLM annotations of that name on the same records (a target that declares
``ReadsJudgeAnnotations``) and compares them with the human majority. Unless told not to, it
replaces the two tabs annobridge owns, ``Agreement`` and ``Disagreements`` (a source that
declares ``WritesOwnedTabs``), and can write an HTML or PNG report.

Nothing is sent to the platform and no SME cell is written.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge import agreement, rules
from bridge._gc import gc_paused
from bridge.agreement import Rating
from bridge.errors import ConfigError
from bridge.mapping import AnnotationSpec, MappingConfig
from bridge.pipeline import read_spec
from bridge.records import Status
from bridge.registry import open_source, open_target
from bridge.sources.base import Source, WritesOwnedTabs
from bridge.targets.base import ReadsJudgeAnnotations, Target

AGREEMENT_TAB = "Agreement"
DISAGREEMENTS_TAB = "Disagreements"


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

    def to_json(self) -> dict[str, Any]:
        return {
            "mapping": self.mapping,
            "source": self.source,
            "rows": self.rows,
            "left_out": dict(self.left_out),
            "judge": self.judge,
            "results": [agreement.to_json(r) for r in self.results],
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
) -> dict[str, list[agreement.Rating]]:
    rows = source.read(read_spec(mapping))
    with gc_paused():
        return _rated(mapping, source, rows, result)


def _rated(
    mapping: MappingConfig, source: Source, rows: list[Any], result: RoundResult
) -> dict[str, list[agreement.Rating]]:
    target = mapping.target
    verdicts = rules.evaluate(
        rows, mapping.annotations, target.record_kind(), source.label, type(target).ID_PATTERNS
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
        for a in verdict.annotations:
            rating = Rating(a.target_id, a.annotator or "", a.label, a.score, row.sheet_row)
            by_name[a.name].append(rating)
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
    if identity:
        raise ConfigError(
            f"{mapping.path or 'the mapping'}: agreement groups the labels by record, and "
            f"these annotations are told apart by {', '.join(identity)} as well (one per "
            "document): agreement of document annotations is not supported yet"
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
        by_name = _ratings(mapping, source, result)
        for name, ratings in by_name.items():
            result.results.append(agreement.agreement(name, ratings, score_level=score_level))
        if judge is not None:
            _compare_judge(mapping, judge, by_name, result, target)
        if tabs is not None:
            tabs.replace_tab(AGREEMENT_TAB, agreement.agreement_rows(result.results))
            tabs.replace_tab(DISAGREEMENTS_TAB, agreement.disagreement_rows(result.results, None))
            result.tabs_written = [AGREEMENT_TAB, DISAGREEMENTS_TAB]
        if report is not None:
            agreement.write_report(result.results, report)
            result.report = str(report)
        return result
    finally:
        if own_source:
            source.close()


def _compare_judge(
    mapping: MappingConfig,
    judge: str,
    by_name: dict[str, list[agreement.Rating]],
    result: RoundResult,
    target: Target | None,
) -> None:
    spec = _judged_spec(mapping, judge)
    human = by_name.get(spec.name, [])
    ids = list(dict.fromkeys(r.record_id for r in human))
    own_target = target is None
    target = target or open_target(mapping)
    try:
        if not isinstance(target, ReadsJudgeAnnotations):
            raise ConfigError(
                f"annobridge cannot read LLM annotations back from {target.name}: --judge works "
                "with Phoenix (annotator_kind LLM) and MLflow (source type LLM_JUDGE)"
            )
        found = target.judge_annotations(judge, ids) if ids else {}
    finally:
        if own_target:
            target.close()
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
