"""Labelling rounds: who labels what, how much the annotators agree, and the judge versus them.

The pure core of issue 14. Nothing here reads a sheet or talks to a platform: the callers turn
the sheet's rows into :class:`Rating` values (and a platform's LLM annotations into
:class:`JudgeVerdict` values) and hand them in.

- :func:`agreement` measures inter-annotator agreement for one annotation name.
- :func:`judge_vs_human` compares an LLM judge's labels with the human majority label.
- :func:`assign` decides which annotators label which record, with overlap.
- :func:`to_json`, :func:`agreement_rows`, :func:`disagreement_rows` and :func:`write_report`
  present the results (JSON, the ``Agreement`` / ``Disagreements`` tabs, an HTML or PNG report).

The statistics come from well-kept libraries: ``krippendorff`` (alpha), scikit-learn
(``cohen_kappa_score``, weighted for scores), statsmodels (``fleiss_kappa``), and matplotlib
for the heatmaps. They are imported inside the functions that use them, so importing this
module (and ``annobridge --help``) stays cheap.

Definitions (the tests pin each one):

- A *rating* is one annotator's label and/or score for one record. A row with neither is not a
  rating. When an annotator rated the same record more than once, the rating with the highest
  sheet row wins (the latest word) and the others are counted in ``duplicates``.
- A record *overlaps* when two or more annotators rated it. Each figure says how many records
  it rests on (``Figure.records``) and, when it cannot be computed, why (``Figure.reason``).
- *Percent agreement* is the mean, over the records with two or more labels, of the share of
  annotator pairs on that record that gave the same label (with two annotators per record:
  the share of records on which they agree). ``unanimous`` counts the records on which every
  annotator agreed.
- Weighted Cohen's kappa on scores uses quadratic weights on the *ranks* of the distinct
  scores given for the annotation by anyone (scikit-learn's definition: scores are ordered
  categories). With more than 1,000 distinct scores it is not computed (and the ordinal
  alpha not above 2,000): alpha at the interval level is the figure for continuous scores.
- Krippendorff's alpha comes from the ``krippendorff`` library unless its units x values x
  values array would be large (continuous scores, many labels): then the same formulas are
  summed over the ratings directly (``_alpha_lean``, checked against the library in the tests).
- A record is *disputed* when its labels are not all equal, or its scores are not all equal.
  *Most disputed first* means: the smallest share of annotators agreeing with the record's
  majority label (records whose labels agree have share 1), then more annotators, then the
  wider range of scores, then the record's first sheet row.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from bridge._gc import gc_paused
from bridge.errors import AssignmentError, ConfigError
from bridge.records import web_address

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "AnnotationAgreement",
    "AssignmentError",
    "Confusion",
    "DisputedRecord",
    "Figure",
    "JudgeAgreement",
    "JudgeDisagreement",
    "JudgeVerdict",
    "LabelFigures",
    "PairFigure",
    "Rating",
    "ScoreFigures",
    "TiedRecord",
    "agreement",
    "agreement_rows",
    "assign",
    "disagreement_rows",
    "judge_vs_human",
    "to_json",
    "write_report",
]

ScoreLevel = Literal["interval", "ordinal"]
_Level = Literal["nominal", "interval", "ordinal"]
REPORT_SUFFIXES = (".html", ".png")
# Above this many cells (units x values x values) the krippendorff library's coincidence step
# would allocate hundreds of megabytes (it builds a units x V x V array): alpha is then computed
# from the coincidence matrix directly, with the same formulas (the tests check both agree).
_LIBRARY_CELLS = 4_000_000
# Dense records x values tables (Fleiss' kappa) up to this many cells; the ordinal alpha and
# the weighted kappa (which treat scores as ordered categories, V x V) up to so many values.
_DENSE_CELLS = 20_000_000
_ORDINAL_MAX_VALUES = 2_000
_KAPPA_MAX_VALUES = 1_000


# --------------------------------------------------------------------------- the values


class Rating(NamedTuple):
    """One annotator's label and/or score for one record, from one sheet row.

    A named tuple, not a dataclass: a round of 10^5 ratings is built in a quarter of the time
    (a frozen dataclass sets each field through ``object.__setattr__``).
    """

    record_id: str
    annotator: str
    label: str | None
    score: float | None
    sheet_row: int


@dataclass(frozen=True)
class Figure:
    """A statistic, the number of records it rests on, and why it is missing if it is."""

    value: float | None
    records: int
    reason: str = ""

    @property
    def defined(self) -> bool:
        return self.value is not None


@dataclass(frozen=True)
class PairFigure:
    """A figure for one pair of annotators (``a`` sorts before ``b``)."""

    a: str
    b: str
    figure: Figure


@dataclass(frozen=True)
class Confusion:
    """Counts of (row label, column label): ``counts[i][j]`` for categories i (rows), j."""

    rows: str
    columns: str
    categories: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]


class DisputedRecord(NamedTuple):
    """A record on which the annotators disagree: each one's label, score and sheet row.

    ``majority_label`` is None when the most frequent labels tie; ``majority_share`` is the
    share of the labels equal to the most frequent one (1.0 when no label was given).
    A named tuple, as ``Rating`` is: a round of 10^5 ratings can have 10^4 disputed records.
    """

    record_id: str
    annotators: tuple[str, ...]
    labels: tuple[str | None, ...]
    scores: tuple[float | None, ...]
    sheet_rows: tuple[int, ...]
    majority_label: str | None
    majority_share: float
    score_range: float


@dataclass(frozen=True)
class LabelFigures:
    alpha: Figure
    fleiss: Figure
    percent: Figure
    unanimous: int
    cohen: tuple[PairFigure, ...]
    confusion: tuple[Confusion, ...]
    categories: tuple[str, ...]


@dataclass(frozen=True)
class ScoreFigures:
    level: ScoreLevel
    alpha: Figure
    percent: Figure
    weighted_cohen: tuple[PairFigure, ...]


@dataclass(frozen=True)
class AnnotationAgreement:
    """Everything :func:`agreement` measured for one annotation name.

    ``labels`` is None when no rating has a label, ``scores`` None when none has a score.
    """

    name: str
    records: int
    records_with_overlap: int
    annotators: tuple[str, ...]
    labels_per_annotator: Mapping[str, Mapping[str, int]]
    ratings: int
    duplicates: int
    labels: LabelFigures | None
    scores: ScoreFigures | None
    disagreements: tuple[DisputedRecord, ...]


@dataclass(frozen=True)
class JudgeVerdict:
    """An LLM judge's annotation of one record."""

    label: str | None
    score: float | None = None
    explanation: str = ""


@dataclass(frozen=True)
class TiedRecord:
    """A record whose human labels have no single majority (left out of the judge figures)."""

    record_id: str
    labels: tuple[str, ...]
    sheet_rows: tuple[int, ...]


@dataclass(frozen=True)
class JudgeDisagreement:
    record_id: str
    human_label: str
    judge_label: str
    explanation: str
    annotators: tuple[str, ...]
    labels: tuple[str, ...]
    sheet_rows: tuple[int, ...]
    human_share: float


@dataclass(frozen=True)
class JudgeAgreement:
    """The judge's labels against the human majority label, for one annotation name.

    ``records`` counts the records with at least one human label; ``compared`` those with a
    single human majority and a judge label; ``without_verdict`` those with human labels but no
    judge label; ``judge_only`` the judge's verdicts on records no human labelled.
    Disagreements come clearest human consensus first (then by first sheet row).
    """

    name: str
    records: int
    compared: int
    without_verdict: int
    judge_only: int
    kappa: Figure
    accuracy: Figure
    confusion: Confusion | None
    ties: tuple[TiedRecord, ...]
    disagreements: tuple[JudgeDisagreement, ...]
    duplicates: int = 0
    verdicts: int = 0


Result = AnnotationAgreement | JudgeAgreement


# --------------------------------------------------------------------------- helpers


def _latest(ratings: Sequence[Rating]) -> tuple[list[Rating], int]:
    """Drop empty ratings; keep each (record, annotator)'s rating with the highest sheet row
    (the last given of those on one row). The result is in sheet-row order."""
    given = [r for r in ratings if r[2] is not None or (r[3] is not None and r[3] == r[3])]
    given.sort(key=itemgetter(4))  # stable: of two on one row, the later one wins below
    best = {(r[0], r[1]): r for r in given}
    latest = list(best.values())
    if len(latest) < len(given):  # a replaced rating kept its first place: put it in order
        latest.sort(key=itemgetter(4))
    return latest, len(given) - len(latest)


def _fmt_names(names: Sequence[str]) -> str:
    return ", ".join(names)


def _no_overlap_reason(annotators: Sequence[str], what: str) -> str:
    if len(annotators) == 0:
        return f"not defined: no {what}"
    if len(annotators) == 1:
        return f"not defined: only one annotator ({annotators[0]}) gave {what}"
    return f"not defined: no record has {what} from two or more annotators"


def _single_category_reason(category: object) -> str:
    return (
        f"not defined: every rating is the same ({category!s}), so agreement cannot be "
        "told apart from chance"
    )


@dataclass(frozen=True)
class _Tally:
    """Sparse counts of the values given to each record: (unit, value, count) triplets.

    Sorted by unit, then by count descending, then by value; ``m`` is each unit's number of
    ratings. Built from a records x annotators code matrix (-1 = no rating) in O(ratings).
    """

    unit: npt.NDArray[np.int64]
    value: npt.NDArray[np.int64]
    count: npt.NDArray[np.int64]
    m: npt.NDArray[np.int64]
    first: npt.NDArray[np.int64]  # index of each unit's first triplet (-1: no rating)


def _tally(codes: npt.NDArray[np.int64], n_values: int) -> _Tally:
    import numpy as np

    n_rec = codes.shape[0]
    rows, cols = np.nonzero(codes >= 0)
    keys, count = np.unique(rows * max(n_values, 1) + codes[rows, cols], return_counts=True)
    unit, value = keys // max(n_values, 1), keys % max(n_values, 1)
    order = np.lexsort((value, -count, unit))
    unit, value, count = unit[order], value[order], count[order]
    m = np.bincount(unit, weights=count, minlength=n_rec).astype(np.int64)
    first = np.full(n_rec, -1, np.int64)
    starts = np.flatnonzero(np.r_[True, unit[1:] != unit[:-1]]) if len(unit) else unit
    first[unit[starts]] = starts
    return _Tally(unit, value, count, m, first)


def _pairable(t: _Tally) -> tuple[_Tally, npt.NDArray[np.int64]]:
    """The tally of the units with two or more ratings, renumbered 0..P-1, and their ids."""
    import numpy as np

    ids = np.flatnonzero(t.m >= 2)
    keep = t.m[t.unit] >= 2
    unit = np.searchsorted(ids, t.unit[keep])
    sub = _Tally(unit, t.value[keep], t.count[keep], t.m[ids], np.empty(0, np.int64))
    return sub, ids


def _percent(t: _Tally) -> float:
    """Mean over the (pairable) units of the share of agreeing pairs of ratings."""
    import numpy as np

    same = np.bincount(t.unit, weights=t.count * (t.count - 1), minlength=len(t.m))
    return float((same / (t.m * (t.m - 1))).mean())


def _dense(t: _Tally, used: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    import numpy as np

    out = np.zeros((len(t.m), len(used)))
    out[t.unit, np.searchsorted(used, t.value)] = t.count
    return out


def _alpha(
    t: _Tally, used: npt.NDArray[np.int64], domain: npt.NDArray[Any], level: _Level
) -> float:
    """Krippendorff's alpha of a pairable tally whose values are ``used`` (codes into domain).

    The krippendorff library builds a units x V x V array: when that would be large, the same
    alpha is computed from sums over the triplets (nominal, interval) or from the V x V
    coincidence matrix (ordinal), with Krippendorff's formulas; the tests check they agree.
    """
    import numpy as np

    n_units, n_values = len(t.m), len(used)
    if n_units * n_values * n_values <= _LIBRARY_CELLS:
        import krippendorff

        return float(
            krippendorff.alpha(
                value_counts=_dense(t, used),
                value_domain=np.asarray(domain)[used],
                level_of_measurement=level,
            )
        )
    return _alpha_lean(t, np.asarray(domain, dtype=np.float64), level)


def _alpha_lean(t: _Tally, domain: npt.NDArray[np.float64], level: _Level) -> float:
    """alpha = 1 - (n - 1) * sum_u [sum_(i != j in u) delta / (m_u - 1)] / sum_(i != j) delta.

    Krippendorff (2011), "Computing Krippendorff's alpha-reliability"; ordered pairs.
    """
    import numpy as np

    count = t.count.astype(np.float64)
    m = t.m.astype(np.float64)
    n = m.sum()
    n_v = np.bincount(t.value, weights=count, minlength=len(domain))
    if level == "nominal":
        same = np.bincount(t.unit, weights=count * (count - 1), minlength=len(m))
        within = ((m * (m - 1) - same) / (m - 1)).sum()
        total = n * n - (n_v * n_v).sum()
    elif level == "interval":
        x = domain[t.value]
        s1 = np.bincount(t.unit, weights=count * x, minlength=len(m))
        s2 = np.bincount(t.unit, weights=count * x * x, minlength=len(m))
        within = (2 * (m * s2 - s1 * s1) / (m - 1)).sum()
        total = 2 * (n * (n_v * domain * domain).sum() - (n_v * domain).sum() ** 2)
    else:  # ordinal: the coincidence matrix, V x V
        from scipy import sparse

        k = len(domain)
        c = sparse.csr_matrix((count, (t.unit, t.value)), shape=(len(m), k))
        weight = 1.0 / (m - 1.0)
        # The coincidences off the diagonal (d is 0 on it, so its correction is left out).
        o = np.asarray((c.T @ sparse.diags(weight) @ c).todense(), dtype=np.float64)
        cum = np.concatenate([[0.0], np.cumsum(n_v)])
        i = np.arange(k)
        lo, hi = np.minimum.outer(i, i), np.maximum.outer(i, i)
        d = (cum[hi + 1] - cum[lo] - (n_v[lo] + n_v[hi]) / 2.0) ** 2
        e = np.outer(n_v, n_v) - np.diag(n_v)
        return float(1.0 - (n - 1.0) * (o * d).sum() / (e * d).sum())
    return float(1.0 - (n - 1.0) * within / total)


def _kappa(
    a: npt.NDArray[np.int64], b: npt.NDArray[np.int64], n_categories: int, weighted: bool
) -> float:
    """Cohen's kappa of two code arrays; weighted: quadratic on the codes' ranks 0..k-1."""
    import numpy as np
    from sklearn.metrics import cohen_kappa_score

    labels = np.arange(n_categories)
    return float(cohen_kappa_score(a, b, labels=labels, weights="quadratic" if weighted else None))


def _pair_figures(
    codes: npt.NDArray[np.int64],
    annotators: Sequence[str],
    categories: Sequence[object],
    weighted: bool,
    what: str,
) -> tuple[list[PairFigure], list[Confusion]]:
    """Cohen's kappa (and the confusion table) for each pair of annotators.

    ``codes`` is records x annotators, -1 where the annotator gave no rating.
    """
    import numpy as np

    pairs: list[PairFigure] = []
    confusions: list[Confusion] = []
    k = len(categories)
    for i in range(len(annotators)):
        for j in range(i + 1, len(annotators)):
            mask = (codes[:, i] >= 0) & (codes[:, j] >= 0)
            a, b = codes[mask, i], codes[mask, j]
            n = int(mask.sum())
            if n == 0:
                fig = Figure(
                    None,
                    0,
                    f"not defined: {annotators[i]} and {annotators[j]} gave {what} to no record "
                    "in common",
                )
            else:
                table = np.bincount(a * k + b, minlength=k * k).reshape(k, k)
                used = np.flatnonzero(table.sum(axis=0) + table.sum(axis=1))
                if len(used) == 1:
                    fig = Figure(None, n, _single_category_reason(categories[int(used[0])]))
                else:
                    fig = Figure(_kappa(a, b, k, weighted), n)
                if not weighted:
                    confusions.append(
                        Confusion(
                            annotators[i],
                            annotators[j],
                            tuple(str(c) for c in categories),
                            tuple(tuple(int(x) for x in row) for row in table),
                        )
                    )
            pairs.append(PairFigure(annotators[i], annotators[j], fig))
    return pairs, confusions


def _label_figures(
    codes: npt.NDArray[np.int64], annotators: Sequence[str], categories: Sequence[str]
) -> LabelFigures:
    import numpy as np

    k = len(categories)
    full = _tally(codes, k)
    t, _ = _pairable(full)
    n_pairable = len(t.m)
    labellers = [a for i, a in enumerate(annotators) if (codes[:, i] >= 0).any()]
    if n_pairable == 0:
        reason = _no_overlap_reason(labellers, "labels")
        alpha = fleiss = percent = Figure(None, 0, reason)
        unanimous = 0
    else:
        used = np.unique(t.value)
        percent = Figure(_percent(t), n_pairable)
        top = np.where(full.first >= 0, full.count[np.maximum(full.first, 0)], 0)
        unanimous = int(((full.m >= 2) & (top == full.m)).sum())
        lo, hi = int(t.m.min()), int(t.m.max())
        if len(used) == 1:
            reason = _single_category_reason(categories[int(used[0])])
            alpha = fleiss = Figure(None, n_pairable, reason)
        else:
            alpha = Figure(_alpha(t, used, np.arange(k), "nominal"), n_pairable)
            if lo != hi:
                fleiss = Figure(
                    None,
                    n_pairable,
                    f"not defined: records have {lo} to {hi} labels; "
                    "Fleiss' kappa needs the same number on every record (see alpha)",
                )
            elif n_pairable * len(used) > _DENSE_CELLS:
                fleiss = Figure(
                    None, n_pairable, f"not computed: {len(used)} labels on {n_pairable} records"
                )
            else:
                from statsmodels.stats.inter_rater import fleiss_kappa

                fleiss = Figure(float(fleiss_kappa(_dense(t, used), method="fleiss")), n_pairable)
    cohen, confusion = _pair_figures(codes, annotators, categories, False, "labels")
    return LabelFigures(
        alpha, fleiss, percent, unanimous, tuple(cohen), tuple(confusion), tuple(categories)
    )


def _score_figures(
    codes: npt.NDArray[np.int64],
    annotators: Sequence[str],
    domain: npt.NDArray[np.float64],
    level: ScoreLevel,
) -> ScoreFigures:
    import numpy as np

    k = len(domain)
    t, _ = _pairable(_tally(codes, k))
    n_pairable = len(t.m)
    scorers = [a for i, a in enumerate(annotators) if (codes[:, i] >= 0).any()]
    if n_pairable == 0:
        alpha = percent = Figure(None, 0, _no_overlap_reason(scorers, "scores"))
    else:
        percent = Figure(_percent(t), n_pairable)
        used = np.unique(t.value)
        if len(used) == 1:
            alpha = Figure(None, n_pairable, _single_category_reason(f"{domain[used[0]]:g}"))
        elif level == "ordinal" and k > _ORDINAL_MAX_VALUES:
            alpha = Figure(
                None,
                n_pairable,
                f"not computed: {k} distinct scores are too many for the ordinal alpha "
                f"(at most {_ORDINAL_MAX_VALUES}); use the interval level",
            )
        else:
            alpha = Figure(_alpha(t, used, domain, level), n_pairable)
    if k > _KAPPA_MAX_VALUES:
        reason = (
            f"not computed: {k} distinct scores; the weighted kappa treats scores as ordered "
            f"categories (at most {_KAPPA_MAX_VALUES}): see alpha"
        )
        weighted = [
            PairFigure(annotators[i], annotators[j], Figure(None, 0, reason))
            for i in range(len(annotators))
            for j in range(i + 1, len(annotators))
        ]
    else:
        shown = [f"{v:g}" for v in domain]
        weighted, _ = _pair_figures(codes, annotators, shown, True, "scores")
    return ScoreFigures(level, alpha, percent, tuple(weighted))


# --------------------------------------------------------------------------- agreement


def agreement(
    name: str, ratings: Sequence[Rating], *, score_level: ScoreLevel = "interval"
) -> AnnotationAgreement:
    """Inter-annotator agreement for the ratings of one annotation name.

    Labels: Krippendorff's alpha (nominal; the headline figure, it handles missing ratings),
    Cohen's kappa and a confusion table per pair of annotators, Fleiss' kappa (when every
    overlapping record has the same number of labels), percent agreement. Scores:
    Krippendorff's alpha at ``score_level`` and quadratic-weighted Cohen's kappa per pair.
    """
    with gc_paused():  # one object per disputed record, 10^4 of them: see bridge._gc
        return _agreement(name, ratings, score_level)


def _agreement(
    name: str, ratings: Sequence[Rating], score_level: ScoreLevel
) -> AnnotationAgreement:
    import numpy as np

    if score_level not in ("interval", "ordinal"):
        raise ConfigError(f"score level must be 'interval' or 'ordinal', not {score_level!r}")
    latest, duplicates = _latest(ratings)
    n = len(latest)
    # one pass over the ratings, by column (zip(*...) runs in C; 10^5 ratings)
    ids, who, label_list, scores, sheet_rows = zip(*latest, strict=True) if latest else ((),) * 5
    # Records in the order of their first sheet row; annotators by name.
    record_index = {rid: i for i, rid in enumerate(dict.fromkeys(ids))}
    annotators = tuple(sorted(set(who)))
    ann_index = {a: i for i, a in enumerate(annotators)}
    n_rec, n_ann = len(record_index), len(annotators)

    rec = np.fromiter(map(record_index.__getitem__, ids), np.int64, n)
    ann = np.fromiter(map(ann_index.__getitem__, who), np.int64, n)
    rows = np.fromiter(sheet_rows, np.int64, n)
    score_arr = np.array([math.nan if x is None else x for x in scores], np.float64)

    row_m = np.full((n_rec, n_ann), -1, np.int64)
    row_m[rec, ann] = rows
    rated = row_m >= 0
    per_record = rated.sum(axis=1)
    overlap = int((per_record >= 2).sum())

    # Labels: codes by sorted category.
    categories = tuple(sorted(set(label_list) - {None}))
    label_m = np.full((n_rec, n_ann), -1, np.int64)
    labels_per_annotator: dict[str, dict[str, int]] = {a: {} for a in annotators}
    label_figs: LabelFigures | None = None
    if categories:
        cat_index: dict[str | None, int] = {c: i for i, c in enumerate(categories)}
        cat_index[None] = -1
        lab_codes = np.fromiter(map(cat_index.__getitem__, label_list), np.int64, n)
        has_label = lab_codes >= 0
        label_m[rec[has_label], ann[has_label]] = lab_codes[has_label]
        k = len(categories)
        per_ann = np.bincount(
            ann[has_label] * k + lab_codes[has_label], minlength=n_ann * k
        ).reshape(n_ann, k)
        for i, a in enumerate(annotators):
            labels_per_annotator[a] = {
                categories[j]: int(per_ann[i, j]) for j in range(k) if per_ann[i, j]
            }
        label_figs = _label_figures(label_m, annotators, categories)

    # Scores: codes by rank of the distinct score.
    has_score = ~np.isnan(score_arr)
    score_m = np.full((n_rec, n_ann), math.nan)
    score_figs: ScoreFigures | None = None
    if has_score.any():
        domain, inverse = np.unique(score_arr[has_score], return_inverse=True)
        score_codes = np.full((n_rec, n_ann), -1, np.int64)
        score_codes[rec[has_score], ann[has_score]] = inverse
        score_m[rec[has_score], ann[has_score]] = score_arr[has_score]
        score_figs = _score_figures(score_codes, annotators, domain, score_level)

    disputes = _disputes(record_index, annotators, categories, label_m, score_m, row_m)
    return AnnotationAgreement(
        name=name,
        records=n_rec,
        records_with_overlap=overlap,
        annotators=annotators,
        labels_per_annotator=labels_per_annotator,
        ratings=len(latest),
        duplicates=duplicates,
        labels=label_figs,
        scores=score_figs,
        disagreements=disputes,
    )


def _disputes(
    record_index: Mapping[str, int],
    annotators: tuple[str, ...],
    categories: tuple[str, ...],
    label_m: npt.NDArray[np.int64],
    score_m: npt.NDArray[np.float64],
    row_m: npt.NDArray[np.int64],
) -> tuple[DisputedRecord, ...]:
    import numpy as np

    n_rec = row_m.shape[0]
    if n_rec == 0:
        return ()
    t = _tally(label_m, len(categories))
    labelled = t.m
    # Each record's first triplet holds its most frequent label (the smallest code on a tie);
    # the next one, when it is of the same record and as frequent, makes a tie.
    top = np.zeros(n_rec, np.int64)
    majority = np.full(n_rec, -1, np.int64)
    tied = np.zeros(n_rec, bool)
    has = t.first >= 0
    if has.any():
        f = t.first[has]
        top[has], majority[has] = t.count[f], t.value[f]
        nxt = np.minimum(f + 1, len(t.unit) - 1)
        tied[has] = (f + 1 < len(t.unit)) & (t.unit[nxt] == t.unit[f]) & (t.count[nxt] == top[has])
    label_dispute = (labelled >= 2) & (top < labelled)
    scored = (~np.isnan(score_m)).sum(axis=1)
    missing = np.isnan(score_m)
    hi = np.where(missing, -np.inf, score_m).max(axis=1)
    lo = np.where(missing, np.inf, score_m).min(axis=1)
    spread = np.where(scored >= 2, hi - lo, 0.0)
    disputed = np.flatnonzero(label_dispute | (spread > 0))
    if len(disputed) == 0:
        return ()
    share = np.where(labelled > 0, top / np.maximum(labelled, 1), 1.0)
    raters = (row_m >= 0).sum(axis=1)
    first_row = np.where(row_m >= 0, row_m, np.iinfo(np.int64).max).min(axis=1)
    order = np.lexsort((first_row[disputed], -spread[disputed], -raters[disputed], share[disputed]))
    disputed = disputed[order]
    ids = list(record_index)
    rows_l = row_m[disputed].tolist()
    labs_l = label_m[disputed].tolist()
    scores_l = score_m[disputed].tolist()
    # the majority label per disputed record, None on a tie or when none was labelled
    majority_l = np.where(tied[disputed] | (labelled[disputed] == 0), -1, majority[disputed])
    named: list[str | None] = [*categories, None]  # code -1 names no label
    everyone = range(len(annotators))
    out: list[DisputedRecord] = []
    add, make = out.append, DisputedRecord
    for u, rr, ll, ss, m, sh, sp in zip(
        disputed.tolist(),
        rows_l,
        labs_l,
        scores_l,
        majority_l.tolist(),
        share[disputed].tolist(),
        spread[disputed].tolist(),
        strict=True,
    ):
        cols = everyone if min(rr) >= 0 else [j for j in everyone if rr[j] >= 0]
        add(
            make(
                ids[u],
                tuple([annotators[j] for j in cols]),
                tuple([named[ll[j]] for j in cols]),
                tuple([None if ss[j] != ss[j] else ss[j] for j in cols]),
                tuple([rr[j] for j in cols]),
                named[m],
                sh,
                sp,
            )
        )
    return tuple(out)


# --------------------------------------------------------------------------- judge


def judge_vs_human(
    name: str, human: Sequence[Rating], judge: Mapping[str, JudgeVerdict]
) -> JudgeAgreement:
    """The judge's label against the human majority label of each record.

    Records whose human labels tie for the majority are listed in ``ties`` and left out of the
    figures. Cohen's kappa and accuracy rest on the ``compared`` records.
    """
    latest, duplicates = _latest(human)
    by_record: dict[str, list[Rating]] = {}
    for r in latest:
        if r.label is not None:
            by_record.setdefault(r.record_id, []).append(r)
    verdicts = {rid: v for rid, v in judge.items() if v.label is not None}
    ties: list[TiedRecord] = []
    pairs: list[tuple[str, str, str, list[Rating], float]] = []
    without = 0
    for rid, rs in by_record.items():
        counter = Counter(r.label for r in rs if r.label is not None)
        (top, n_top), *rest = counter.most_common()
        if rest and rest[0][1] == n_top:
            ties.append(
                TiedRecord(rid, tuple(str(r.label) for r in rs), tuple(r.sheet_row for r in rs))
            )
            continue
        verdict = verdicts.get(rid)
        if verdict is None or verdict.label is None:
            without += 1
            continue
        pairs.append((rid, top, verdict.label, rs, n_top / len(rs)))
    judge_only = sum(1 for rid in verdicts if rid not in by_record)
    n = len(pairs)
    confusion: Confusion | None = None
    if not verdicts:
        reason = f"not defined: the judge gave no label to any record of '{name}'"
        kappa = accuracy = Figure(None, 0, reason)
    elif n == 0:
        reason = "not defined: no record has both a human majority label and a judge label"
        kappa = accuracy = Figure(None, 0, reason)
    else:
        import numpy as np

        cats = tuple(sorted({p[1] for p in pairs} | {p[2] for p in pairs}))
        idx = {c: i for i, c in enumerate(cats)}
        h = np.array([idx[p[1]] for p in pairs], np.int64)
        j = np.array([idx[p[2]] for p in pairs], np.int64)
        k = len(cats)
        table = np.bincount(h * k + j, minlength=k * k).reshape(k, k)
        confusion = Confusion(
            "human", "judge", cats, tuple(tuple(int(x) for x in row) for row in table)
        )
        accuracy = Figure(float((h == j).mean()), n)
        if k == 1:
            kappa = Figure(None, n, _single_category_reason(cats[0]))
        else:
            kappa = Figure(_kappa(h, j, k, False), n)
    disagreements = sorted(
        (
            JudgeDisagreement(
                record_id=rid,
                human_label=top,
                judge_label=jl,
                explanation=verdicts[rid].explanation,
                annotators=tuple(r.annotator for r in rs),
                labels=tuple(str(r.label) for r in rs),
                sheet_rows=tuple(r.sheet_row for r in rs),
                human_share=share,
            )
            for rid, top, jl, rs, share in pairs
            if top != jl
        ),
        key=lambda d: (-d.human_share, -len(d.labels), min(d.sheet_rows)),
    )
    return JudgeAgreement(
        name=name,
        records=len(by_record),
        compared=n,
        without_verdict=without,
        judge_only=judge_only,
        kappa=kappa,
        accuracy=accuracy,
        confusion=confusion,
        ties=tuple(ties),
        disagreements=tuple(disagreements),
        duplicates=duplicates,
        verdicts=len(verdicts),
    )


# --------------------------------------------------------------------------- assign


def assign(
    record_ids: Sequence[str],
    annotators: Sequence[str],
    per_record: int,
    existing: Mapping[str, Sequence[str]] | None = None,
) -> list[tuple[str, str]]:
    """Who labels which record: ``(record_id, annotator)`` pairs, in record order.

    Every record gets ``per_record`` different annotators. A record in ``existing`` keeps its
    annotators (topped up from ``annotators`` if it has fewer than ``per_record``, never
    moved); a new record goes to the ``per_record`` annotators with the fewest records so far
    (``existing`` counted), ties broken by the fewest records shared with those already chosen
    for it (so that every pair of annotators overlaps, for the pairwise kappas), then by the
    order of ``annotators``. The same inputs give the same assignment; starting from balanced
    counts, the counts stay within one of each other.
    """
    names = [a.strip() for a in annotators]
    if any(not a for a in names):
        raise AssignmentError("an annotator name is empty: give names like alice,bob,carol")
    dupes = sorted({a for a in names if names.count(a) > 1})
    if dupes:
        raise AssignmentError(f"annotator names are repeated: {_fmt_names(dupes)}")
    if isinstance(per_record, bool) or not isinstance(per_record, int) or per_record < 1:
        raise AssignmentError(f"per-record must be a whole number of 1 or more, not {per_record!r}")
    if per_record > len(names):
        raise AssignmentError(
            f"per-record is {per_record} but only {len(names)} annotator(s) were given "
            f"({_fmt_names(names)}): give at least {per_record} names or lower --per-record"
        )
    existing = existing or {}
    load: dict[str, int] = dict.fromkeys(names, 0)
    shared: dict[tuple[str, str], int] = {}

    def note(chosen: Sequence[str]) -> None:
        for a in chosen:
            load[a] = load.get(a, 0) + 1
        for x in range(len(chosen)):
            for y in range(x + 1, len(chosen)):
                key = (min(chosen[x], chosen[y]), max(chosen[x], chosen[y]))
                shared[key] = shared.get(key, 0) + 1

    kept: dict[str, list[str]] = {}
    for rid, who in existing.items():
        chosen = list(dict.fromkeys(a.strip() for a in who if a.strip()))
        kept[rid] = chosen
        note(chosen)
    order = {a: i for i, a in enumerate(names)}
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for rid in record_ids:
        if rid in seen:
            continue
        seen.add(rid)
        chosen = list(kept.get(rid, []))
        topped: list[str] = []
        while len(chosen) < per_record:
            best = min(
                (a for a in names if a not in chosen),
                key=lambda a: (
                    load[a],
                    sum(shared.get((min(a, c), max(a, c)), 0) for c in chosen),
                    order[a],
                ),
            )
            chosen.append(best)
            topped.append(best)
        if rid in kept:
            for a in topped:
                load[a] += 1
            for a in topped:
                for c in chosen:
                    if c != a:
                        key = (min(a, c), max(a, c))
                        shared[key] = shared.get(key, 0) + 1
        else:
            note(chosen)
        out.extend((rid, a) for a in chosen)
    return out


# --------------------------------------------------------------------------- JSON and tabs


def _figure_json(f: Figure) -> dict[str, object]:
    return {"value": f.value, "records": f.records, "reason": f.reason}


def _pairs_json(pairs: Sequence[PairFigure]) -> list[dict[str, object]]:
    return [{"a": p.a, "b": p.b, **_figure_json(p.figure)} for p in pairs]


def _confusion_json(c: Confusion) -> dict[str, object]:
    return {
        "rows": c.rows,
        "columns": c.columns,
        "categories": list(c.categories),
        "counts": [list(r) for r in c.counts],
    }


def to_json(result: Result, link: Callable[[str], str] | None = None) -> dict[str, object]:
    """Every figure of one result, as plain JSON-ready values.

    Each disagreement's ``link`` is ``link(record_id)`` (None when not given or empty), as in
    :func:`disagreement_rows`.
    """

    def link_of(record_id: str) -> str | None:
        return (link(record_id) or None) if link else None

    if isinstance(result, JudgeAgreement):
        return {
            "name": result.name,
            "kind": "judge",
            "records": result.records,
            "compared": result.compared,
            "without_verdict": result.without_verdict,
            "judge_only": result.judge_only,
            "verdicts": result.verdicts,
            "duplicates": result.duplicates,
            "kappa": _figure_json(result.kappa),
            "accuracy": _figure_json(result.accuracy),
            "confusion": _confusion_json(result.confusion) if result.confusion else None,
            "ties": [
                {
                    "record_id": t.record_id,
                    "labels": list(t.labels),
                    "sheet_rows": list(t.sheet_rows),
                }
                for t in result.ties
            ],
            "disagreements": [
                {
                    "record_id": d.record_id,
                    "human_label": d.human_label,
                    "judge_label": d.judge_label,
                    "explanation": d.explanation,
                    "human_share": d.human_share,
                    "labels": dict(zip(d.annotators, d.labels, strict=True)),
                    "sheet_rows": list(d.sheet_rows),
                    "link": link_of(d.record_id),
                }
                for d in result.disagreements
            ],
        }
    labels = result.labels
    scores = result.scores
    return {
        "name": result.name,
        "kind": "annotators",
        "records": result.records,
        "records_with_overlap": result.records_with_overlap,
        "annotators": list(result.annotators),
        "ratings": result.ratings,
        "duplicates": result.duplicates,
        "labels_per_annotator": {a: dict(c) for a, c in result.labels_per_annotator.items()},
        "labels": None
        if labels is None
        else {
            "categories": list(labels.categories),
            "krippendorff_alpha": _figure_json(labels.alpha),
            "fleiss_kappa": _figure_json(labels.fleiss),
            "percent_agreement": _figure_json(labels.percent),
            "unanimous": labels.unanimous,
            "cohen_kappa": _pairs_json(labels.cohen),
            "confusion": [_confusion_json(c) for c in labels.confusion],
        },
        "scores": None
        if scores is None
        else {
            "level": scores.level,
            "krippendorff_alpha": _figure_json(scores.alpha),
            "percent_agreement": _figure_json(scores.percent),
            "weighted_cohen_kappa": _pairs_json(scores.weighted_cohen),
        },
        "disagreements": [
            {
                "record_id": d.record_id,
                "majority_label": d.majority_label,
                "majority_share": d.majority_share,
                "score_range": d.score_range,
                "ratings": [
                    {"annotator": a, "label": lab, "score": s, "sheet_row": row}
                    for a, lab, s, row in zip(
                        d.annotators, d.labels, d.scores, d.sheet_rows, strict=True
                    )
                ],
                "link": link_of(d.record_id),
            }
            for d in result.disagreements
        ],
    }


Cell = str | float | int
AGREEMENT_HEADER: list[Cell] = [
    "annotation",
    "kind",
    "statistic",
    "annotators",
    "value",
    "records",
    "note",
]


def _value(f: Figure) -> Cell:
    return "" if f.value is None else round(f.value, 4)


def _fig_row(name: str, kind: str, stat: str, who: str, f: Figure) -> list[Cell]:
    return [name, kind, stat, who, _value(f), f.records, f.reason]


def agreement_rows(results: Sequence[Result]) -> list[list[Cell]]:
    """The ``Agreement`` tab: header first, then one row per figure."""
    out: list[list[Cell]] = [list(AGREEMENT_HEADER)]
    for r in results:
        if isinstance(r, JudgeAgreement):
            n = r.name
            out.append(_fig_row(n, "judge", "cohen_kappa", "human majority x judge", r.kappa))
            out.append(_fig_row(n, "judge", "accuracy", "human majority x judge", r.accuracy))
            out.append([n, "judge", "records_compared", "", r.compared, r.compared, ""])
            out.append([n, "judge", "ties", "", len(r.ties), len(r.ties), "left out"])
            out.append(
                [n, "judge", "without_verdict", "", r.without_verdict, r.without_verdict, ""]
            )
            continue
        n, who = r.name, ", ".join(r.annotators)
        out.append([n, "", "records", who, r.records, r.records, ""])
        out.append([n, "", "records_with_overlap", who, r.records_with_overlap, r.records, ""])
        out.append([n, "", "annotators", who, len(r.annotators), r.records, ""])
        if r.duplicates:
            out.append([n, "", "duplicates", who, r.duplicates, r.duplicates, "last row kept"])
        if r.labels is not None:
            lf = r.labels
            out.append(_fig_row(n, "label", "krippendorff_alpha_nominal", who, lf.alpha))
            out.append(_fig_row(n, "label", "fleiss_kappa", who, lf.fleiss))
            out.append(_fig_row(n, "label", "percent_agreement", who, lf.percent))
            for p in lf.cohen:
                out.append(_fig_row(n, "label", "cohen_kappa", f"{p.a} x {p.b}", p.figure))
        if r.scores is not None:
            sf = r.scores
            out.append(_fig_row(n, "score", f"krippendorff_alpha_{sf.level}", who, sf.alpha))
            out.append(_fig_row(n, "score", "percent_agreement", who, sf.percent))
            for p in sf.weighted_cohen:
                out.append(_fig_row(n, "score", "weighted_cohen_kappa", f"{p.a} x {p.b}", p.figure))
    return out


def _cell(label: str | None, score: float | None) -> str:
    parts = [label] if label is not None else []
    if score is not None:
        parts.append(f"{score:g}")
    return " / ".join(parts)


def disagreement_rows(
    results: Sequence[Result], link: Callable[[str], str] | None = None
) -> list[list[Cell]]:
    """The ``Disagreements`` tab: header first, then one row per disputed record.

    One column per annotator (``label / score``), the judge's label and explanation when a
    judge result is among ``results``, the sheet rows, and ``link(record_id)`` when given.
    """
    names: list[str] = []
    for r in results:
        for d in r.disagreements:
            for a in d.annotators:
                if a not in names:
                    names.append(a)
    names.sort()
    col = {a: i for i, a in enumerate(names)}
    has_judge = any(isinstance(r, JudgeAgreement) for r in results)
    header: list[Cell] = ["annotation", "record_id", *names]
    if has_judge:
        header += ["human_majority", "judge", "judge_explanation"]
    header += ["sheet_rows", "link"]
    out: list[list[Cell]] = [header]
    for r in results:
        for d in r.disagreements:
            cells: list[Cell] = [""] * len(names)
            if isinstance(d, JudgeDisagreement):
                for a, lab in zip(d.annotators, d.labels, strict=True):
                    cells[col[a]] = lab
                extra: list[Cell] = [d.human_label, d.judge_label, d.explanation]
            else:
                for a, maybe, s in zip(d.annotators, d.labels, d.scores, strict=True):
                    cells[col[a]] = _cell(maybe, s)
                extra = ["", "", ""] if has_judge else []
            rows = ", ".join(str(x) for x in sorted(d.sheet_rows))
            out.append(
                [r.name, d.record_id, *cells, *extra, rows, link(d.record_id) if link else ""]
            )
    return out


# --------------------------------------------------------------------------- report


def _confusions(results: Sequence[Result]) -> list[tuple[str, Confusion]]:
    out: list[tuple[str, Confusion]] = []
    for r in results:
        if isinstance(r, JudgeAgreement):
            if r.confusion is not None:
                out.append((f"{r.name}: human majority x judge", r.confusion))
        elif r.labels is not None:
            out.extend((f"{r.name}: {c.rows} x {c.columns}", c) for c in r.labels.confusion)
    return out


def _draw(ax: Any, title: str, c: Confusion) -> None:
    """One confusion matrix as a heatmap with its counts written in the cells."""
    k = len(c.categories)
    ax.imshow(c.counts, cmap="Blues", vmin=0)
    ax.set_xticks(range(k), c.categories, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), c.categories, fontsize=8)
    ax.set_xlabel(c.columns)
    ax.set_ylabel(c.rows)
    ax.set_title(title, fontsize=9)
    top = max((max(row) for row in c.counts), default=0)
    for i, row in enumerate(c.counts):
        for j, v in enumerate(row):
            dark = top > 0 and v > top / 2
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")  # fmt: skip


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _heatmap_png(title: str, c: Confusion) -> bytes:
    from matplotlib.figure import Figure as MplFigure

    size = max(3.5, 1.0 + 0.6 * len(c.categories))
    fig = MplFigure(figsize=(size + 1.0, size), layout="tight")
    _draw(fig.add_subplot(), title, c)
    return _png(fig)


def _grid_png(items: Sequence[tuple[str, Confusion]]) -> bytes:
    """Every confusion matrix in one image, three to a row."""
    from matplotlib.figure import Figure as MplFigure

    if not items:
        fig = MplFigure(figsize=(5, 1.5))
        fig.text(0.5, 0.5, "no confusion matrix: no pair of annotators overlaps", ha="center")
        return _png(fig)
    cols = min(3, len(items))
    nrows = math.ceil(len(items) / cols)
    fig = MplFigure(figsize=(5 * cols, 4.5 * nrows), layout="tight")
    for n, (title, c) in enumerate(items):
        _draw(fig.add_subplot(nrows, cols, n + 1), title, c)
    return _png(fig)


def _html_cell(value: Cell) -> str:
    """A table cell; a web address (a record's link) as a link that opens in a new tab."""
    text = html.escape(str(value))
    url = web_address(value)
    if url:
        text = f"<a href='{html.escape(url)}' target='_blank' rel='noopener'>{text}</a>"
    return f"<td>{text}</td>"


def _html_table(rows: Sequence[Sequence[Cell]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(
    results: Sequence[Result], path: Path, link: Callable[[str], str] | None = None
) -> None:
    """An HTML report (figures, disagreements, confusion heatmaps) or a PNG of the heatmaps.

    ``link`` fills the disagreements' link column of the HTML, as in :func:`disagreement_rows`.
    """
    suffix = path.suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise ConfigError(
            f"report file {path.name!r}: the report can be "
            + " or ".join(REPORT_SUFFIXES)
            + f", not {suffix or 'a file without a suffix'}"
        )
    items = _confusions(results)
    if suffix == ".png":
        _write(path, _grid_png(items))
        return
    images = "".join(
        f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,"
        f"{base64.b64encode(_heatmap_png(title, c)).decode('ascii')}'>"
        f"<figcaption>{html.escape(title)}</figcaption></figure>"
        for title, c in items
    )
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
        "figure{display:inline-block;margin:0.5em}"
    )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>annobridge agreement</title>"
        f"<style>{style}</style></head><body><h1>Agreement</h1>"
        f"{_html_table(agreement_rows(results))}<h2>Confusion matrices</h2>"
        f"{images or '<p>No confusion matrix: no pair of annotators overlaps.</p>'}"
        f"<h2>Disagreements</h2>{_html_table(disagreement_rows(results, link))}</body></html>"
    )
    _write(path, page.encode("utf-8"))


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise ConfigError(
            f"--report {path}: cannot write it ({exc.strerror}); give a file in a folder that "
            "exists and can be written"
        ) from None
