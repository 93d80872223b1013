"""Annotation rules -> normalised values and a pandera schema, and SME-readable messages.

Values are normalised first (trim, case-fold, synonyms, numbers from text); the pandera
schema then checks every rule lazily over the whole sheet at once, and each failure becomes
a message that names the value and the fix ("score 1.4 is above the maximum 1").
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from bridge._gc import gc_paused
from bridge.configs import OTEL_ID_PATTERNS
from bridge.mapping import AnnotationSpec, Rules
from bridge.records import NOTE_EXTRA, Annotation, CellError, Row

IdPatterns = Mapping[str, tuple[str, str]]
"""kind -> (regex, what such an id looks like): each target config's ``ID_PATTERNS``."""

IDENTIFIER_PREFIX = "annobridge"


@dataclass
class RowVerdict:
    """What the rules made of one sheet row."""

    annotations: list[Annotation] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> bool:
        return not self.annotations and not self.problems


def _is_blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return False  # a NaN score is a value, and a wrong one
    return isinstance(value, str) and value.strip() == ""


def _text(value: Any) -> str | None:
    if _is_blank(value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def identifier_for(annotator: str | None) -> str:
    """The upsert identifier: one annotation per (record, name, annotator)."""
    return f"{IDENTIFIER_PREFIX}:{annotator}" if annotator else IDENTIFIER_PREFIX


class _Normalizer:
    def __init__(self, spec: AnnotationSpec, kind: str) -> None:
        self.spec = spec
        self.rules: Rules = spec.rules
        self.kind = kind
        labels = self.rules.labels or []
        fold = (lambda s: s) if self.rules.case_sensitive else str.casefold
        self.fold = fold
        self.canonical = {fold(lbl): lbl for lbl in labels}
        for alias, target in self.rules.synonyms.items():
            self.canonical.setdefault(fold(alias.strip()), target)

    def label(self, value: Any) -> tuple[str | None, str | None]:
        text = _text(value)
        if text is None:
            return None, None
        return self.canonical.get(self.fold(text), text), None

    def score(self, value: Any) -> tuple[float | None, str | None]:
        if _is_blank(value):
            return None, None
        col = self.spec.score_column
        if isinstance(value, bool):
            return (1.0 if value else 0.0), None
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str):
            text = value.strip()
            if text.casefold() in ("true", "false"):  # a boolean exported to text (CSV)
                return (1.0 if text.casefold() == "true" else 0.0), None
            try:
                number = float(text)
            except ValueError:
                hint = ""
                if re.fullmatch(r"-?\d+,\d+", text):
                    hint = f"; use a decimal point: {text.replace(',', '.')}"
                return None, f"{col} '{_shown(text)}' is not a number{hint}"
        elif isinstance(value, datetime | date | time):
            what = "a time" if isinstance(value, time) else "a date"
            return None, f"{col} is {what} ({value}), not a number; format the column as a number"
        else:
            return None, f"{col} '{_shown(value)}' is not a number"
        if math.isnan(number) or math.isinf(number):
            return None, f"{col} {str(value).strip()} is not a finite number; enter a number"
        return number + 0.0, None  # + 0.0 turns -0.0 into 0.0

    def target_id(self, value: Any) -> tuple[str | None, str | None]:
        col = self.spec.id_column
        if _is_blank(value):
            return None, f"{col} is empty; paste the {self.kind} id this label is about"
        if isinstance(value, bool):
            return None, (
                f"{col} is {'TRUE' if value else 'FALSE'} (a yes/no cell), not a {self.kind} id; "
                "paste the id"
            )
        if isinstance(value, int | float):
            return None, (
                f"{col} is a number ({_num(value)}), not a {self.kind} id; format the column as "
                "text and paste the id again"
            )
        if isinstance(value, datetime | date | time):
            what = "a time" if isinstance(value, time) else "a date"
            return None, (
                f"{col} is {what} ({value}), not a {self.kind} id; format the column as text "
                "and paste the id again"
            )
        return str(value).strip(), None


@dataclass
class _Columns:
    """Normalised values of one annotation entry, one element per row."""

    ids: list[str | None] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)
    texts: list[str | None] = field(default_factory=list)
    annotators: list[str | None] = field(default_factory=list)
    present: list[bool] = field(default_factory=list)
    # a score was typed, even if it is not a number (that has its own message)
    score_given: list[bool] = field(default_factory=list)
    # a mapped cell holds an error value (#N/A): that is the row's problem, not a missing label
    has_error: list[bool] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "id": pd.Series(self.ids, dtype=object),
                "label": pd.Series(self.labels, dtype=object),
                "score": pd.Series(self.scores, dtype="float64"),
                "explanation": pd.Series(self.texts, dtype=object),
                "present": pd.Series(self.present, dtype=bool),
                "score_given": pd.Series(self.score_given, dtype=bool),
                "has_error": pd.Series(self.has_error, dtype=bool),
            }
        )


def _normalise(
    spec: AnnotationSpec, rows: Sequence[Row], kind: str, problems: dict[int, list[str]]
) -> _Columns:
    norm = _Normalizer(spec, kind)
    out = _Columns()
    ids, labels, scores, texts = out.ids, out.labels, out.scores, out.texts
    annotators, present = out.annotators, out.present
    score_given, has_error = out.score_given, out.has_error
    id_col, ann_col = spec.id_column, spec.annotator_column
    lbl_col, scr_col, txt_col = spec.label_column, spec.score_column, spec.explanation_column
    canonical, fold = norm.canonical, norm.fold
    finite = math.isfinite
    # An annotator column with no `annotator:` default: a blank name is refused, never sent
    # under a made-up identity (typing the name in later would then add a second annotation).
    blank_annotator = (
        f"{ann_col} is empty: type the annotator's name in column '{ann_col}' (or set "
        "`annotator:` in the mapping as the name for rows that leave it blank)"
        if ann_col and not spec.annotator
        else ""
    )
    for i, row in enumerate(rows):
        v = row.values
        raw_label = v.get(lbl_col) if lbl_col else None
        raw_score = v.get(scr_col) if scr_col else None
        raw_text = v.get(txt_col) if txt_col else None
        raw_id = v.get(id_col)
        raw_annotator = v.get(ann_col) if ann_col else None
        # the usual row, done inline: text cells, a finite number (or nothing) as the score
        if (
            type(raw_id) is str
            and (raw_label is None or type(raw_label) is str)
            and (raw_score is None or (type(raw_score) is float and finite(raw_score)))
            and (raw_text is None or type(raw_text) is str)
            and (raw_annotator is None or type(raw_annotator) is str)
        ):
            clean_label = raw_label.strip() if raw_label is not None else ""
            clean_text = raw_text.strip() if raw_text is not None else ""
            clean_id = raw_id.strip()
            if clean_id and (clean_label or clean_text or raw_score is not None):
                present.append(True)
                score_given.append(raw_score is not None)
                has_error.append(False)
                who = raw_annotator.strip() if raw_annotator is not None else ""
                if not (clean_id + clean_label + clean_text + who).isprintable():
                    found = [(id_col, clean_id), (lbl_col, clean_label), (txt_col, clean_text)]
                    _controls([*found, (ann_col, who)], problems, i)
                ids.append(clean_id)
                labels.append(
                    canonical.get(fold(clean_label), clean_label) if clean_label else None
                )
                scores.append(raw_score + 0.0 if raw_score is not None else None)
                texts.append(clean_text or None)
                if not who and blank_annotator:
                    problems[i].append(blank_annotator)
                annotators.append(who or spec.annotator)
                continue
        has_data = not (_is_blank(raw_label) and _is_blank(raw_score) and _is_blank(raw_text))
        present.append(has_data)
        score_given.append(not _is_blank(raw_score))
        has_error.append(False)
        if not has_data:
            ids.append(None)
            labels.append(None)
            scores.append(None)
            texts.append(None)
            annotators.append(None)
            continue
        cells = {
            id_col: raw_id,
            lbl_col: raw_label,
            scr_col: raw_score,
            txt_col: raw_text,
            ann_col: raw_annotator,
        }
        for col, raw in cells.items():
            if col and isinstance(raw, CellError):
                has_error[-1] = True
                problems[i].append(
                    f"{col} is the error {raw} in the sheet, not a value: fix the formula (or "
                    "the cells it refers to) or type the value in"
                )
        if isinstance(raw_id, CellError):
            tid, p1 = None, None
        else:
            tid, p1 = norm.target_id(raw_id)
        label, p2 = norm.label(None if isinstance(raw_label, CellError) else raw_label)
        score, p3 = norm.score(None if isinstance(raw_score, CellError) else raw_score)
        text = _text(None if isinstance(raw_text, CellError) else raw_text)
        annotator = _text(None if isinstance(raw_annotator, CellError) else raw_annotator)
        for p in (p1, p2, p3):
            if p:
                problems[i].append(p)
        _controls(
            [(id_col, tid), (lbl_col, label), (txt_col, text), (ann_col, annotator)], problems, i
        )
        ids.append(tid)
        labels.append(label)
        scores.append(score)
        texts.append(text)
        if not annotator and blank_annotator and not isinstance(raw_annotator, CellError):
            problems[i].append(blank_annotator)
        annotators.append(annotator or spec.annotator)
    return out


def _controls(
    found: Sequence[tuple[str | None, str | None]], problems: dict[int, list[str]], i: int
) -> None:
    """Report the control characters in a row's texts (cheap for the printable ones)."""
    for col, value in found:
        if not col or not value or value.isprintable():
            continue
        bad = _CONTROL.search(value)
        if bad:
            problems[i].append(
                f"{col} holds an invisible control character ({_escape(bad[0])} at "
                f"character {bad.start() + 1}); retype the text without it"
            )


def build_schema(
    spec: AnnotationSpec, kind: str, patterns: IdPatterns = OTEL_ID_PATTERNS
) -> pa.DataFrameSchema:
    """The pandera schema for one annotation entry of a mapping."""
    rules = spec.rules
    id_regex = patterns[kind][0]
    label_checks = [pa.Check.str_length(max_value=rules.max_label_length, error="label_length")]
    if rules.labels is not None:
        label_checks.append(pa.Check.isin(rules.labels, error="label_allowed"))
    score_checks = []
    if rules.score_min is not None:
        score_checks.append(pa.Check.ge(rules.score_min, error="score_min"))
    if rules.score_max is not None:
        score_checks.append(pa.Check.le(rules.score_max, error="score_max"))

    require = rules.require

    def required(df: pd.DataFrame) -> pd.Series:
        has_label = df["label"].notna()
        has_score = df["score"].notna() | df["score_given"]
        ok = {
            "label": has_label,
            "score": has_score,
            "label_or_score": has_label | has_score,
            "label_and_score": has_label & has_score,
        }[require]
        return ok | ~df["present"] | df["has_error"]

    return pa.DataFrameSchema(
        {
            "id": pa.Column(
                checks=[pa.Check.str_matches(id_regex, error="id_format")], nullable=True
            ),
            "label": pa.Column(checks=label_checks, nullable=True),
            "score": pa.Column(checks=score_checks, nullable=True),
            "explanation": pa.Column(
                checks=[
                    pa.Check.str_length(
                        max_value=rules.max_explanation_length, error="explanation_length"
                    )
                ],
                nullable=True,
            ),
        },
        checks=[pa.Check(required, error="required", element_wise=False)],
        name=spec.name,
    )


def _message(spec: AnnotationSpec, kind: str, check: str, value: Any, patterns: IdPatterns) -> str:
    rules = spec.rules
    lbl, scr, expl = spec.label_column, spec.score_column, spec.explanation_column
    if check == "id_format":
        full = str(value)
        if full != full.lower() and re.fullmatch(patterns[kind][0], full.lower()):
            return (
                f"{spec.id_column} '{full}' has capital letters; {kind} ids are lowercase: "
                f"'{full.lower()}'"
            )
        shown = _shown(full)
        squeezed = "".join(full.split())
        if squeezed != full and re.fullmatch(patterns[kind][0], squeezed):
            return f"{spec.id_column} '{shown}' has spaces inside; remove them: '{squeezed}'"
        article = "an" if kind[:1] in "aeiouAEIOU" or kind.startswith("MLflow") else "a"
        return f"{spec.id_column} '{shown}' is not {article} {kind} id ({patterns[kind][1]})"
    if check == "label_allowed":
        allowed = ", ".join(rules.labels or [])
        return f"{lbl} '{_shown(value)}' is not one of: {allowed}"
    if check == "label_length":
        return f"{lbl} is {len(str(value)):,} characters; the limit is {rules.max_label_length:,}"
    if check == "score_min":
        return f"{scr} {_num(value)} is below the minimum {_num(rules.score_min)}"
    if check == "score_max":
        return f"{scr} {_num(value)} is above the maximum {_num(rules.score_max)}"
    if check == "explanation_length":
        return (
            f"{expl} is {len(str(value)):,} characters; the limit is "
            f"{rules.max_explanation_length:,}"
        )
    if check == "required":
        return {
            "label": f"{lbl} is required for '{spec.name}'",
            "score": f"{scr} is required for '{spec.name}'",
            "label_or_score": f"give a {lbl or 'label'} or a {scr or 'score'} for '{spec.name}'",
            "label_and_score": f"both {lbl} and {scr} are required for '{spec.name}'",
        }[rules.require]
    return f"{check} failed for '{spec.name}' ({value})"  # pragma: no cover - new check kinds


# Characters that are never meant in a label, an id or a name (tab, line feed and carriage
# return are fine in an explanation): C0 controls, DEL, non-characters, lone surrogates.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")


def _escape(ch: str) -> str:
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def _shown(value: Any, limit: int = 60) -> str:
    """A value quoted in a message: at most ``limit`` characters, control characters visible."""
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return _CONTROL.sub(lambda m: _escape(m[0]), text)


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)  # 1e+308, not its 309 digits


def evaluate(
    rows: Sequence[Row],
    specs: Sequence[AnnotationSpec],
    kind: str,
    sheet_label: str = "",
    id_patterns: IdPatterns = OTEL_ID_PATTERNS,
    identity_columns: Sequence[str] = (),
) -> list[RowVerdict]:
    """Normalise and validate every row against every annotation entry.

    :param rows: the sheet rows, in sheet order.
    :param specs: the mapping's annotation entries.
    :param kind: what ids refer to (span, trace, session, or a platform's own kind).
    :param sheet_label: a human name of the sheet, recorded in annotation metadata.
    :param id_patterns: what ids of each kind look like; the target config's
        ``ID_PATTERNS`` (default: OpenTelemetry's span, trace and session ids).
    :param identity_columns: columns that tell annotations of one record apart (the target
        config's ``identity_columns()``, e.g. Phoenix's document position): rows that differ
        there are not duplicates.
    :returns: one verdict per row, in the same order.
    """
    with gc_paused():
        return _evaluate(rows, specs, kind, sheet_label, id_patterns, identity_columns)


def _evaluate(
    rows: Sequence[Row],
    specs: Sequence[AnnotationSpec],
    kind: str,
    sheet_label: str,
    patterns: IdPatterns,
    identity_columns: Sequence[str] = (),
) -> list[RowVerdict]:
    verdicts = [RowVerdict([], []) for _ in rows]
    # the target ids of the annotations made, by name: to see at once that none is twice
    made: dict[str, list[str]] = defaultdict(list)
    for spec in specs:
        problems: dict[int, list[str]] = defaultdict(list)
        cols = _normalise(spec, rows, kind, problems)
        frame = cols.frame()
        schema = build_schema(spec, kind, patterns)
        try:
            schema.validate(frame, lazy=True)
        except SchemaErrors as exc:
            cases = exc.failure_cases
            for check, failure, index in zip(
                cases["check"], cases["failure_case"], cases["index"], strict=True
            ):
                if index is None or (isinstance(index, float) and math.isnan(index)):
                    continue  # pragma: no cover - schema-level failures carry no row
                name = str(check).split("(")[0]
                i = int(index)
                if cols.present[i]:
                    problems[i].append(_message(spec, kind, name, failure, patterns))
        _annotate(spec, kind, sheet_label, rows, cols, problems, verdicts, made)
    if identity_columns:
        _flag_duplicates(rows, verdicts, None, identity_columns)
    else:
        _flag_duplicates(rows, verdicts, made)
    for verdict in verdicts:
        if verdict.problems:
            verdict.annotations.clear()
            # entries sharing a column find the same problem: say it once per row
            verdict.problems[:] = dict.fromkeys(verdict.problems)
    return verdicts


_ANNOTATION_FIELDS = (
    "row_index",
    "name",
    "kind",
    "target_id",
    "label",
    "score",
    "explanation",
    "annotator",
    "annotator_kind",
    "identifier",
    "metadata",
    "is_update",
    "extra",
)
# Annotation is a frozen dataclass: its __init__ sets each of its 13 fields through
# object.__setattr__, which took a third of the time of validating a row. The annotations of
# a sheet are made by filling the new instance's __dict__ instead, exactly as __init__ would
# (the same fields, in the same order, with the same defaults: tests/test_rules.py compares
# them), as long as Annotation is the plain dataclass this was written for; otherwise through
# __init__.
_FILL_ANNOTATION = (
    tuple(f.name for f in dataclasses.fields(Annotation)) == _ANNOTATION_FIELDS
    and not hasattr(Annotation, "__post_init__")
    and not hasattr(Annotation, "__slots__")
)


def _annotate(
    spec: AnnotationSpec,
    kind: str,
    sheet_label: str,
    rows: Sequence[Row],
    cols: _Columns,
    problems: dict[int, list[str]],
    verdicts: list[RowVerdict],
    made: dict[str, list[str]],
) -> None:
    """Each present row of one annotation entry: its problems, or its annotation."""
    name, annotator_kind = spec.name, spec.annotator_kind
    identifiers: dict[str | None, str] = {}
    new, fill, remember = object.__new__, _FILL_ANNOTATION, made[name].append
    for i, (row, present, target_id, label, score, text, annotator) in enumerate(
        zip(
            rows,
            cols.present,
            cols.ids,
            cols.labels,
            cols.scores,
            cols.texts,
            cols.annotators,
            strict=True,
        )
    ):
        if not present:
            continue
        found = problems.get(i)
        if found:
            verdicts[i].problems.extend(dict.fromkeys(found))
            continue
        identifier = identifiers.get(annotator)
        if identifier is None:
            identifier = identifiers[annotator] = identifier_for(annotator)
        metadata: dict[str, Any] = {
            "source": "annobridge",
            "sheet": sheet_label,
            "row": row.sheet_row,
        }
        if annotator:
            metadata["annotator"] = annotator
        target = str(target_id)
        extra: dict[str, Any] = {}
        if spec.note_column:
            raw_note = row.values.get(spec.note_column)
            if isinstance(raw_note, CellError):
                verdicts[i].problems.append(
                    f"{spec.note_column} is the error {raw_note} in the sheet, not a note: fix "
                    "the formula or type the note in"
                )
                continue
            extra[NOTE_EXTRA] = _text(raw_note) or ""
        if fill:
            annotation = new(Annotation)
            fields = annotation.__dict__  # one item at a time: the keys stay shared
            fields["row_index"] = i
            fields["name"] = name
            fields["kind"] = kind
            fields["target_id"] = target
            fields["label"] = label
            fields["score"] = score
            fields["explanation"] = text
            fields["annotator"] = annotator
            fields["annotator_kind"] = annotator_kind
            fields["identifier"] = identifier
            fields["metadata"] = metadata
            fields["is_update"] = False
            fields["extra"] = extra
        else:  # pragma: no cover - Annotation changed: the plain way
            annotation = Annotation(
                row_index=i,
                name=name,
                kind=kind,
                target_id=target,
                label=label,
                score=score,
                explanation=text,
                annotator=annotator,
                annotator_kind=annotator_kind,
                identifier=identifier,
                metadata=metadata,
                extra=extra,
            )
        verdicts[i].annotations.append(annotation)
        remember(target)


def _flag_duplicates(
    rows: Sequence[Row],
    verdicts: list[RowVerdict],
    made: dict[str, list[str]] | None,
    identity_columns: Sequence[str] = (),
) -> None:
    """Two rows that would write the same annotation cannot both win: flag both.

    :param made: the target ids of the annotations in ``verdicts`` by annotation name, when
        known: when no id is there twice for a name (the usual case), there is no duplicate.
    :param identity_columns: columns whose values are part of what one annotation is about.
    """
    if made is not None and all(len(set(ids)) == len(ids) for ids in made.values()):
        return
    first_at: dict[tuple[str, ...], int] = {}
    seen: dict[tuple[str, ...], list[int]] = {}
    for i, verdict in enumerate(verdicts):
        at_row = tuple(_text(rows[i].values.get(c)) or "" for c in identity_columns)
        for a in verdict.annotations:
            key = (a.target_id, a.name, a.identifier, *at_row)
            j = first_at.setdefault(key, i)
            if j != i:
                seen.setdefault(key, [j]).append(i)
    for (tid, name, _, *parts), where in seen.items():
        at = "".join(f", {c} {v}" for c, v in zip(identity_columns, parts, strict=True))
        first = next(a for a in verdicts[where[0]].annotations if a.name == name)
        who = first.annotator or "none given"
        sheet_rows = [rows[i].sheet_row for i in where]
        for i in where:
            others = [str(r) for r in sheet_rows if r != rows[i].sheet_row]
            verdicts[i].problems.append(
                f"{'row' if len(others) == 1 else 'rows'} {', '.join(others)} "
                f"{'labels' if len(others) == 1 else 'label'} the same {first.kind} {tid}{at} for "
                f"'{name}' by the same annotator ({who}); keep one of these rows"
            )
