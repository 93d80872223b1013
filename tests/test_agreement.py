"""Labelling rounds (bridge/agreement.py): the figures against values worked by hand.

Each reference value is computed in the test itself from the textbook formula (plain Python,
fractions where it helps), never with the library call that bridge.agreement makes, and where a
published value exists it is checked too.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import pytest

from bridge import agreement as ag
from bridge.agreement import (
    AnnotationAgreement,
    AssignmentError,
    JudgeVerdict,
    Rating,
    agreement,
    agreement_rows,
    assign,
    disagreement_rows,
    judge_vs_human,
    to_json,
    write_report,
)
from bridge.errors import ConfigError

# --------------------------------------------------------------------------- builders


def ratings_from_table(
    table: Sequence[Sequence[float | None]], coders: Sequence[str], *, as_label: bool = True
) -> list[Rating]:
    """coders x units reliability data (None = missing) -> ratings, one sheet row each."""
    out: list[Rating] = []
    row = 2
    for coder, values in zip(coders, table, strict=True):
        for unit, v in enumerate(values):
            if v is None:
                continue
            label = f"{v:g}" if as_label else None
            out.append(Rating(f"u{unit + 1:02d}", coder, label, float(v), row))
            row += 1
    return out


def pairs_to_ratings(
    pairs: Sequence[tuple[str, str]], a: str = "ann", b: str = "bea"
) -> list[Rating]:
    out: list[Rating] = []
    for n, (x, y) in enumerate(pairs):
        out.append(Rating(f"r{n}", a, x, None, 2 * n + 2))
        out.append(Rating(f"r{n}", b, y, None, 2 * n + 3))
    return out


def hand_alpha(units: Sequence[Sequence[float]], delta: Callable[[float, float], float]) -> float:
    """Krippendorff's alpha from its definition: 1 - D_o / D_e over the pairable values.

    D_o = 1/n * sum_u 1/(m_u - 1) * sum over ordered pairs (i != j) in u of delta
    D_e = 1/(n (n - 1)) * sum over ordered pairs (i != j) of all pairable values of delta
    """
    pairable = [u for u in units if len(u) >= 2]
    n = sum(len(u) for u in pairable)
    d_o = Fraction(0)
    for u in pairable:
        s = sum(
            (Fraction(delta(x, y)) for i, x in enumerate(u) for j, y in enumerate(u) if i != j),
            Fraction(0),
        )
        d_o += s / (len(u) - 1)
    d_o /= n
    values = [v for u in pairable for v in u]
    d_e = sum(
        (
            Fraction(delta(x, y))
            for i, x in enumerate(values)
            for j, y in enumerate(values)
            if i != j
        ),
        Fraction(0),
    ) / (n * (n - 1))
    return float(1 - d_o / d_e)


def nominal(x: float, y: float) -> float:
    return 0.0 if x == y else 1.0


def interval(x: float, y: float) -> float:
    return (x - y) ** 2


def hand_kappa(
    pairs: Sequence[tuple[object, object]], weights: dict[object, int] | None = None
) -> float:
    """Cohen's kappa from its definition; quadratic weights on the category ranks when given."""
    n = len(pairs)
    cats = sorted({x for p in pairs for x in p}, key=str) if weights is None else sorted(weights)
    rank = weights or {c: i for i, c in enumerate(cats)}
    row = Counter(a for a, _ in pairs)
    col = Counter(b for _, b in pairs)
    observed = Counter(pairs)

    def w(a: object, b: object) -> Fraction:
        if weights is None:
            return Fraction(0 if a == b else 1)
        return Fraction((rank[a] - rank[b]) ** 2)

    disagree_o = sum((w(a, b) * observed[(a, b)] for a in cats for b in cats), Fraction(0)) / n
    disagree_e = sum(
        (w(a, b) * Fraction(row[a] * col[b], n * n) for a in cats for b in cats), Fraction(0)
    )
    return float(1 - disagree_o / disagree_e)


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers,
# 12 units, with missing values. Published: nominal 0.743, ordinal 0.815, interval 0.849.
KRIPPENDORFF = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]
CODERS = ["A", "B", "C", "D"]


def units_of(table: Sequence[Sequence[float | None]]) -> list[list[float]]:
    return [[float(v) for v in col if v is not None] for col in zip(*table, strict=True)]


# --------------------------------------------------------------------------- alpha


def test_krippendorff_worked_example_nominal_with_missing_data() -> None:
    result = agreement("k", ratings_from_table(KRIPPENDORFF, CODERS))
    by_hand = hand_alpha(units_of(KRIPPENDORFF), nominal)
    assert round(by_hand, 3) == 0.743  # the published value
    assert result.labels is not None
    assert result.labels.alpha.value == pytest.approx(by_hand, abs=1e-12)
    # unit 12 has one value only: not pairable; unit 11 has two.
    assert result.labels.alpha.records == 11
    assert result.records == 12
    assert result.records_with_overlap == 11
    assert result.annotators == ("A", "B", "C", "D")


def test_krippendorff_worked_example_interval_and_ordinal() -> None:
    ratings = ratings_from_table(KRIPPENDORFF, CODERS)
    by_hand = hand_alpha(units_of(KRIPPENDORFF), interval)
    assert round(by_hand, 3) == 0.849  # the published value
    result = agreement("k", ratings)
    assert result.scores is not None and result.scores.level == "interval"
    assert result.scores.alpha.value == pytest.approx(by_hand, abs=1e-12)
    ordinal = agreement("k", ratings, score_level="ordinal")
    assert ordinal.scores is not None
    assert round(ordinal.scores.alpha.value or 0, 3) == 0.815  # the published value


def test_the_memory_lean_alpha_equals_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    # Large value domains go through _alpha_lean (V x V memory) instead of the library's
    # units x V x V array: both must give the same alpha at every level.
    rnd = random.Random(3)
    table: list[list[float | None]] = [
        [rnd.choice([None, 1, 2, 2.5, 4, 7, 10]) for _ in range(40)] for _ in range(4)
    ]
    ratings = ratings_from_table(table, CODERS)
    library = {lvl: agreement("x", ratings, score_level=lvl) for lvl in ("interval", "ordinal")}
    monkeypatch.setattr(ag, "_LIBRARY_CELLS", 0)
    for lvl, expected in library.items():
        lean = agreement("x", ratings, score_level=lvl)  # type: ignore[arg-type]
        assert lean.scores is not None and expected.scores is not None
        assert lean.scores.alpha.value == pytest.approx(expected.scores.alpha.value, abs=1e-12)
        assert lean.labels is not None and expected.labels is not None
        assert lean.labels.alpha.value == pytest.approx(expected.labels.alpha.value, abs=1e-12)
    lean = agreement("x", ratings)
    assert lean.scores is not None
    assert lean.scores.alpha.value == pytest.approx(
        hand_alpha(units_of(table), interval), abs=1e-12
    )


def test_continuous_scores_with_many_distinct_values() -> None:
    # 450 distinct scores on 150 records: the library would need a 150 x 450 x 450 array; the
    # lean path gives the alpha of the definition.
    rnd = random.Random(11)
    table: list[list[float | None]] = [[None] * 150 for _ in range(3)]
    for unit in range(150):
        base = rnd.random()
        for coder in range(3):
            table[coder][unit] = round(base + rnd.gauss(0, 0.1), 6)
    result = agreement("x", ratings_from_table(table, CODERS[:3], as_label=False))
    assert result.scores is not None
    assert result.scores.alpha.value == pytest.approx(
        hand_alpha(units_of(table), interval), abs=1e-9
    )
    assert all(p.figure.value is not None for p in result.scores.weighted_cohen)


def test_too_many_distinct_scores_for_the_rank_based_figures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ag, "_KAPPA_MAX_VALUES", 4)
    monkeypatch.setattr(ag, "_ORDINAL_MAX_VALUES", 4)
    ratings = ratings_from_table(KRIPPENDORFF, CODERS)  # 5 distinct scores
    result = agreement("k", ratings, score_level="ordinal")
    assert result.scores is not None
    assert result.scores.alpha.value is None
    assert "5 distinct scores are too many for the ordinal alpha" in result.scores.alpha.reason
    assert len(result.scores.weighted_cohen) == 6
    for p in result.scores.weighted_cohen:
        assert p.figure.value is None and "5 distinct scores" in p.figure.reason
    interval_alpha = agreement("k", ratings).scores
    assert interval_alpha is not None and interval_alpha.alpha.value is not None


# --------------------------------------------------------------------------- kappas


def test_cohen_kappa_worked_example() -> None:
    # Wikipedia's "Cohen's kappa" example: 50 grant proposals, two readers.
    # yes/yes 20, yes/no 5, no/yes 10, no/no 15: p_o = 0.7, p_e = 0.5*0.6 + 0.5*0.4 = 0.5,
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    result = agreement("grant", pairs_to_ratings(pairs))
    assert result.labels is not None
    (pair,) = result.labels.cohen
    assert (pair.a, pair.b) == ("ann", "bea")
    assert pair.figure.value == pytest.approx(0.4, abs=1e-12)
    assert pair.figure.value == pytest.approx(hand_kappa(pairs), abs=1e-12)
    assert pair.figure.records == 50
    (conf,) = result.labels.confusion
    assert conf.categories == ("no", "yes")
    assert conf.counts == ((15, 10), (5, 20))  # rows: ann, columns: bea
    # Two raters on every record: Fleiss' kappa is defined; percent agreement = p_o.
    assert result.labels.percent.value == pytest.approx(0.7)
    assert result.labels.unanimous == 35
    assert result.labels.fleiss.value is not None
    assert result.labels.alpha.value is not None


def test_fleiss_kappa_worked_example() -> None:
    # Fleiss (1971) as on Wikipedia: 10 subjects, 14 raters each, 5 categories; kappa 0.210.
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    n, raters = len(table), 14
    p_j = [Fraction(sum(row[j] for row in table), n * raters) for j in range(5)]
    p_i = [Fraction(sum(c * c for c in row) - raters, raters * (raters - 1)) for row in table]
    p_bar, p_e = sum(p_i) / n, sum(p * p for p in p_j)
    by_hand = float((p_bar - p_e) / (1 - p_e))
    assert round(by_hand, 3) == 0.210
    ratings: list[Rating] = []
    row = 2
    for subject, counts in enumerate(table):
        rater = 0
        for cat, count in enumerate(counts):
            for _ in range(count):
                ratings.append(Rating(f"s{subject}", f"r{rater:02d}", f"c{cat + 1}", None, row))
                rater += 1
                row += 1
    result = agreement("fleiss", ratings)
    assert result.labels is not None
    assert result.labels.fleiss.value == pytest.approx(by_hand, abs=1e-12)
    assert result.labels.fleiss.records == 10
    assert result.labels.percent.value == pytest.approx(float(p_bar), abs=1e-12)


def test_weighted_kappa_on_scores_by_hand() -> None:
    # Two raters, scores 1..3: quadratic weights (i - j)^2 on the ranks.
    pairs = [(1.0, 1.0)] * 3 + [(1.0, 2.0), (2.0, 2.0), (2.0, 2.0), (2.0, 3.0)]
    pairs += [(3.0, 3.0), (3.0, 3.0), (3.0, 1.0)]
    # By hand: n = 10, rows (1,2,3) = (4,3,3), columns = (4,3,3);
    # sum w*o = 1 + 1 + 4 = 6 -> 0.6; sum w*e = (2*1*(4*3 + 3*3) + 2*4*(4*3)) / 100 = 1.38
    # weighted kappa = 1 - 0.6 / 1.38.
    expected = 1 - 0.6 / 1.38
    assert hand_kappa(pairs, {1.0: 0, 2.0: 1, 3.0: 2}) == pytest.approx(expected, abs=1e-12)
    ratings: list[Rating] = []
    for n, (x, y) in enumerate(pairs):
        ratings.append(Rating(f"r{n}", "ann", None, x, 2 * n + 2))
        ratings.append(Rating(f"r{n}", "bea", None, y, 2 * n + 3))
    result = agreement("helpful", ratings)
    assert result.labels is None  # no rating has a label
    assert result.scores is not None
    (pair,) = result.scores.weighted_cohen
    assert pair.figure.value == pytest.approx(expected, abs=1e-12)
    assert pair.figure.records == 10
    assert result.scores.alpha.value == pytest.approx(
        hand_alpha([[x, y] for x, y in pairs], interval), abs=1e-12
    )


def test_cohen_kappa_for_every_pair_on_the_krippendorff_data() -> None:
    result = agreement("k", ratings_from_table(KRIPPENDORFF, CODERS))
    assert result.labels is not None
    assert [(p.a, p.b) for p in result.labels.cohen] == list(itertools.combinations(CODERS, 2))
    for p in result.labels.cohen:
        i, j = CODERS.index(p.a), CODERS.index(p.b)
        both = [
            (f"{x:g}", f"{y:g}")
            for x, y in zip(KRIPPENDORFF[i], KRIPPENDORFF[j], strict=True)
            if x is not None and y is not None
        ]
        assert p.figure.records == len(both)
        assert p.figure.value == pytest.approx(hand_kappa(both), abs=1e-12)
    # Records have 2 to 4 labels: Fleiss' kappa is not defined, and says why.
    assert result.labels.fleiss.value is None
    assert "2 to 4 labels" in result.labels.fleiss.reason


# --------------------------------------------------------------------------- edge cases


def test_one_annotator_only_every_figure_not_defined_with_the_reason() -> None:
    ratings = [Rating(f"r{n}", "alice", lab, float(n % 3), n + 2) for n, lab in enumerate("abcab")]
    result = agreement("solo", ratings)
    assert result.annotators == ("alice",)
    assert result.records == 5 and result.records_with_overlap == 0
    assert result.labels is not None and result.scores is not None
    for fig in (result.labels.alpha, result.labels.fleiss, result.labels.percent):
        assert fig.value is None and fig.records == 0
        assert fig.reason == "not defined: only one annotator (alice) gave labels"
    assert result.scores.alpha.value is None
    assert "only one annotator (alice)" in result.scores.alpha.reason
    assert result.labels.cohen == () and result.labels.confusion == ()
    assert result.disagreements == ()
    assert result.labels_per_annotator == {"alice": {"a": 2, "b": 2, "c": 1}}
    rows = agreement_rows([result])
    alpha_row = next(r for r in rows if r[2] == "krippendorff_alpha_nominal")
    assert alpha_row[4] == "" and "only one annotator" in str(alpha_row[6])


def test_a_single_category() -> None:
    ratings = pairs_to_ratings([("good", "good")] * 4)
    result = agreement("same", ratings)
    assert result.labels is not None
    assert result.labels.alpha.value is None
    assert "every rating is the same (good)" in result.labels.alpha.reason
    assert result.labels.alpha.records == 4
    assert result.labels.fleiss.value is None
    (pair,) = result.labels.cohen
    assert pair.figure.value is None and "the same (good)" in pair.figure.reason
    assert result.labels.percent.value == 1.0
    assert result.labels.unanimous == 4
    assert result.disagreements == ()


def test_no_overlap() -> None:
    ratings = [Rating("r1", "ann", "a", None, 2), Rating("r2", "bea", "b", None, 3)]
    result = agreement("apart", ratings)
    assert result.records == 2 and result.records_with_overlap == 0
    assert result.labels is not None
    assert result.labels.alpha.value is None
    assert result.labels.alpha.reason == (
        "not defined: no record has labels from two or more annotators"
    )
    (pair,) = result.labels.cohen
    assert pair.figure.value is None
    assert pair.figure.reason == "not defined: ann and bea gave labels to no record in common"
    assert result.labels.confusion == ()


def test_no_ratings_at_all() -> None:
    result = agreement("empty", [Rating("r1", "ann", None, None, 2)])
    assert result.records == 0 and result.ratings == 0
    assert result.labels is None and result.scores is None
    assert result.disagreements == ()
    json.dumps(to_json(result))


def test_records_with_missing_ratings_and_scores_only_on_some() -> None:
    # ann labels everything, bea half; scores only where both gave one.
    ratings = [
        Rating("r1", "ann", "a", 1.0, 2),
        Rating("r1", "bea", "a", 2.0, 3),
        Rating("r2", "ann", "b", None, 4),
        Rating("r2", "bea", "a", None, 5),
        Rating("r3", "ann", "a", 3.0, 6),
        Rating("r4", "bea", None, 3.0, 7),
        Rating("r4", "ann", "b", 3.0, 8),
    ]
    result = agreement("gaps", ratings)
    assert result.records == 4 and result.records_with_overlap == 3
    assert result.labels is not None and result.scores is not None
    assert result.labels.alpha.records == 2  # r1 and r2 have two labels
    assert result.labels.unanimous == 1  # r1; r3 and r4 have one label only
    assert result.labels.alpha.value == pytest.approx(
        hand_alpha([[0, 0], [1, 0]], nominal), abs=1e-12
    )
    assert result.scores.alpha.records == 2  # r1 and r4 have two scores
    assert result.scores.alpha.value == pytest.approx(
        hand_alpha([[1, 2], [3, 3]], interval), abs=1e-12
    )
    # r2 disagrees on the label, r1 on the score; r4 has one label only and equal scores.
    disputed = {d.record_id: d for d in result.disagreements}
    assert set(disputed) == {"r1", "r2"}
    assert disputed["r2"].labels == ("b", "a") and disputed["r2"].sheet_rows == (4, 5)
    assert disputed["r1"].scores == (1.0, 2.0) and disputed["r1"].score_range == 1.0


def test_duplicate_ratings_last_sheet_row_wins_and_is_counted() -> None:
    ratings = [
        Rating("r1", "ann", "b", None, 9),  # ann's later correction, listed first
        Rating("r1", "ann", "a", None, 2),
        Rating("r1", "bea", "b", None, 3),
        Rating("r1", "bea", "b", None, 4),
        Rating("r2", "ann", "a", None, 5),
        Rating("r2", "bea", "b", None, 6),
    ]
    result = agreement("dupes", ratings)
    assert result.duplicates == 2
    assert result.ratings == 4
    assert result.labels is not None
    assert result.labels.unanimous == 1  # r1: b, b after the correction
    assert [d.record_id for d in result.disagreements] == ["r2"]
    assert result.labels_per_annotator == {"ann": {"a": 1, "b": 1}, "bea": {"b": 2}}
    assert to_json(result)["duplicates"] == 2


def test_most_disputed_first() -> None:
    # r1: 3 raters, 3 labels (share 1/3); r2: 3 raters, 2 agree (2/3); r3: 2 raters split (1/2);
    # r4: labels agree, scores 1 and 5 (share 1, range 4); r5: scores 2 and 3 (range 1).
    rows = iter(range(2, 100))
    spec = {
        "r5": [("ann", "x", 2.0), ("bea", "x", 3.0)],
        "r2": [("ann", "x", None), ("bea", "x", None), ("cy", "y", None)],
        "r4": [("ann", "x", 1.0), ("bea", "x", 5.0)],
        "r3": [("ann", "x", None), ("bea", "y", None)],
        "r1": [("ann", "x", None), ("bea", "y", None), ("cy", "z", None)],
        "r6": [("ann", "x", None), ("bea", "x", None)],
    }
    ratings = [Rating(rid, a, lab, s, next(rows)) for rid, rs in spec.items() for a, lab, s in rs]
    result = agreement("order", ratings)
    assert [d.record_id for d in result.disagreements] == ["r1", "r3", "r2", "r4", "r5"]
    d1 = result.disagreements[0]
    assert d1.annotators == ("ann", "bea", "cy") and d1.majority_label is None
    assert d1.majority_share == pytest.approx(1 / 3)
    assert result.disagreements[2].majority_label == "x"


def test_empty_ratings_are_dropped_and_a_disputed_record_lists_only_who_rated_it() -> None:
    nan = float("nan")
    ratings = [
        Rating("r1", "ann", "x", 1.0, 2),
        Rating("r1", "bea", None, nan, 3),  # nothing given: not a rating
        Rating("r1", "cy", "y", None, 4),
        Rating("r2", "ann", "x", None, 5),
        Rating("r2", "bea", "x", None, 6),
        Rating("r2", "cy", "x", None, 7),
        Rating("r3", "bea", None, 2.0, 8),  # a score only
        Rating("r3", "cy", None, 4.0, 9),
    ]
    result = agreement("partial", ratings)
    assert result.ratings == 7 and result.duplicates == 0
    assert result.annotators == ("ann", "bea", "cy")
    first, second = result.disagreements
    assert (first.record_id, first.annotators, first.labels) == ("r1", ("ann", "cy"), ("x", "y"))
    assert first.scores == (1.0, None) and first.sheet_rows == (2, 4)
    assert first.majority_label is None and first.majority_share == 0.5  # a tie
    assert (second.record_id, second.labels, second.scores) == ("r3", (None, None), (2.0, 4.0))
    assert second.majority_label is None and second.majority_share == 1.0
    assert second.score_range == 2.0
    assert all(type(v) is float for v in (first.majority_share, second.score_range))


def test_two_ratings_on_one_sheet_row_the_later_one_wins() -> None:
    ratings = [Rating("r1", "ann", "a", None, 2), Rating("r1", "ann", "b", None, 2)]
    result = agreement("same row", ratings)
    assert result.duplicates == 1
    assert result.labels_per_annotator == {"ann": {"b": 1}}


def test_a_correction_wins_by_its_sheet_row_not_by_its_label() -> None:
    ratings = [
        Rating("r1", "ann", "zebra", None, 2),
        Rating("r1", "ann", "aardvark", None, 9),  # the later row: the correction
        Rating("r1", "bea", "zebra", None, 3),
    ]
    result = agreement("correction", ratings)
    assert result.labels_per_annotator == {"ann": {"aardvark": 1}, "bea": {"zebra": 1}}
    (disputed,) = result.disagreements
    assert disputed.labels == ("aardvark", "zebra") and disputed.sheet_rows == (9, 3)


def test_a_record_disputed_by_its_scores_only_keeps_its_majority_label() -> None:
    ratings = [
        # r1: labels split, no score at all; r2 (the last record): one label, scores apart;
        # r3 (after it): the same label twice, scores apart
        Rating("r1", "ann", "a", None, 2),
        Rating("r1", "bea", "b", None, 3),
        Rating("r2", "ann", "a", 1.0, 4),
        Rating("r2", "bea", None, 3.0, 5),  # a score only
        Rating("r3", "ann", "b", 1.0, 6),
        Rating("r3", "bea", "b", 5.0, 7),
    ]
    disputed = {d.record_id: d for d in agreement("scores", ratings).disagreements}
    assert disputed["r1"].score_range == 0.0  # no scores: no spread (not -inf)
    assert disputed["r2"].majority_label == "a" and disputed["r2"].majority_share == 1.0
    assert disputed["r2"].score_range == 2.0
    assert disputed["r3"].majority_label == "b" and disputed["r3"].majority_share == 1.0


def test_of_records_as_disputed_the_one_with_more_annotators_comes_first() -> None:
    ratings = [
        Rating("few", "ann", "x", None, 2),
        Rating("few", "bea", "y", None, 3),
        Rating("many", "ann", "x", None, 4),
        Rating("many", "bea", "y", None, 5),
        Rating("many", "cy", "x", None, 6),
        Rating("many", "dee", "y", None, 7),
    ]
    result = agreement("raters", ratings)
    assert [d.majority_share for d in result.disagreements] == [0.5, 0.5]
    assert [d.record_id for d in result.disagreements] == ["many", "few"]


def test_a_tie_on_the_last_record_has_no_majority_label() -> None:
    ratings = [
        Rating("r1", "ann", "a", None, 2),
        Rating("r1", "bea", "a", None, 3),
        Rating("r1", "cy", "b", None, 4),
        Rating("r2", "ann", "a", None, 5),  # the last record: one a, one b
        Rating("r2", "bea", "b", None, 6),
    ]
    disputed = {d.record_id: d for d in agreement("tie", ratings).disagreements}
    assert disputed["r1"].majority_label == "a"
    assert disputed["r2"].majority_label is None and disputed["r2"].majority_share == 0.5


# --------------------------------------------------------------------------- judge


def test_judge_versus_the_human_majority() -> None:
    human = [
        # r1: majority yes (2 of 3); judge says yes
        Rating("r1", "ann", "yes", None, 2),
        Rating("r1", "bea", "yes", None, 3),
        Rating("r1", "cy", "no", None, 4),
        # r2: unanimous no; judge says yes -> disagreement, the clearest consensus
        Rating("r2", "ann", "no", None, 5),
        Rating("r2", "bea", "no", None, 6),
        # r3: tie yes/no -> reported, left out
        Rating("r3", "ann", "yes", None, 7),
        Rating("r3", "bea", "no", None, 8),
        # r4: single human no; judge no
        Rating("r4", "cy", "no", None, 9),
        # r5: human yes, no verdict
        Rating("r5", "ann", "yes", None, 10),
        # r6: majority yes; judge no -> disagreement
        Rating("r6", "ann", "yes", None, 11),
        Rating("r6", "bea", "yes", None, 12),
        Rating("r6", "cy", "no", None, 13),
    ]
    judge = {
        "r1": JudgeVerdict("yes", 0.9, "cites the source"),
        "r2": JudgeVerdict("yes", 0.6, "looks plausible"),
        "r3": JudgeVerdict("no"),
        "r4": JudgeVerdict("no"),
        "r6": JudgeVerdict("no", None, "misses the refund window"),
        "r9": JudgeVerdict("no"),  # no human label
    }
    result = judge_vs_human("correct", human, judge)
    assert result.records == 6
    assert [t.record_id for t in result.ties] == ["r3"]
    assert result.ties[0].labels == ("yes", "no") and result.ties[0].sheet_rows == (7, 8)
    assert result.without_verdict == 1 and result.judge_only == 1
    assert result.compared == 4
    # compared (human, judge): r1 (yes,yes) r2 (no,yes) r4 (no,no) r6 (yes,no)
    pairs = [("yes", "yes"), ("no", "yes"), ("no", "no"), ("yes", "no")]
    assert result.accuracy.value == pytest.approx(0.5)
    assert result.kappa.value == pytest.approx(hand_kappa(pairs), abs=1e-12)
    assert result.kappa.records == 4
    assert result.confusion is not None
    assert result.confusion.categories == ("no", "yes")
    assert result.confusion.counts == ((1, 1), (1, 1))
    assert [d.record_id for d in result.disagreements] == ["r2", "r6"]
    r6 = result.disagreements[1]
    assert (r6.human_label, r6.judge_label) == ("yes", "no")
    assert r6.explanation == "misses the refund window"
    assert r6.labels == ("yes", "yes", "no") and r6.sheet_rows == (11, 12, 13)
    data = to_json(result)
    json.dumps(data)
    assert data["kappa"] == {"value": result.kappa.value, "records": 4, "reason": ""}
    tab = disagreement_rows([result], lambda rid: f"http://127.0.0.1/{rid}")
    assert tab[0] == [
        "annotation", "record_id", "ann", "bea", "cy", "human_majority", "judge",
        "judge_explanation", "sheet_rows", "link",
    ]  # fmt: skip
    assert tab[2] == [
        "correct", "r6", "yes", "yes", "no", "yes", "no", "misses the refund window",
        "11, 12, 13", "http://127.0.0.1/r6",
    ]  # fmt: skip


def test_judge_with_no_verdicts() -> None:
    human = pairs_to_ratings([("a", "a"), ("a", "b"), ("b", "b")])
    result = judge_vs_human("correct", human, {"r0": JudgeVerdict(None)})
    assert result.verdicts == 0 and result.compared == 0
    assert result.kappa.value is None and result.accuracy.value is None
    assert result.kappa.reason == "not defined: the judge gave no label to any record of 'correct'"
    assert result.without_verdict == 2  # r0 and r2; r1 is a tie
    assert [t.record_id for t in result.ties] == ["r1"]
    assert result.confusion is None
    rows = agreement_rows([result])
    assert any(r[2] == "cohen_kappa" and r[4] == "" and "no label" in str(r[6]) for r in rows)


def test_judge_agreeing_on_a_single_category() -> None:
    human = pairs_to_ratings([("a", "a"), ("a", "a")])
    result = judge_vs_human("x", human, {"r0": JudgeVerdict("a"), "r1": JudgeVerdict("a")})
    assert result.accuracy.value == 1.0
    assert result.kappa.value is None and "the same (a)" in result.kappa.reason


# --------------------------------------------------------------------------- assign


def _check_assignment(
    out: list[tuple[str, str]],
    records: Sequence[str],
    names: Sequence[str],
    per_record: int,
    existing: dict[str, list[str]],
) -> None:
    by_record: dict[str, list[str]] = {}
    for rid, who in out:
        by_record.setdefault(rid, []).append(who)
    assert list(by_record) == list(dict.fromkeys(records))
    for rid, who in by_record.items():
        assert len(who) == len(set(who)), (rid, who)
        if rid in existing:
            assert who[: len(existing[rid])] == existing[rid]  # kept, never moved
            assert len(who) == max(per_record, len(existing[rid]))
        else:
            assert len(who) == per_record
            assert set(who) <= set(names)


def test_assign_properties_on_random_inputs() -> None:
    rnd = random.Random(20261202)
    for _ in range(300):
        names = [f"sme{i}" for i in range(rnd.randint(1, 7))]
        rnd.shuffle(names)
        per_record = rnd.randint(1, len(names))
        records = [f"rec{rnd.randrange(10_000)}" for _ in range(rnd.randint(0, 60))]
        out = assign(records, names, per_record)
        _check_assignment(out, records, names, per_record, {})
        counts = Counter(who for _, who in out)
        loads = [counts.get(a, 0) for a in names]
        assert max(loads) - min(loads) <= 1, (names, per_record, loads)
        assert assign(list(records), list(names), per_record) == out  # deterministic

        # A later export: the old records keep their annotators, the new ones balance.
        existing: dict[str, list[str]] = {}
        for rid, who in out:
            existing.setdefault(rid, []).append(who)
        more = records + [f"new{i}" for i in range(rnd.randint(0, 40))]
        rnd.shuffle(more)
        out2 = assign(more, names, per_record, existing)
        _check_assignment(out2, more, names, per_record, existing)
        counts2 = Counter(who for _, who in out2)
        loads2 = [counts2.get(a, 0) for a in names]
        assert max(loads2) - min(loads2) <= 1, (names, per_record, loads2)
        assert assign(more, names, per_record, existing) == out2


def test_assign_with_unbalanced_or_short_existing_assignments() -> None:
    rnd = random.Random(7)
    for _ in range(200):
        names = [f"a{i}" for i in range(rnd.randint(2, 6))]
        per_record = rnd.randint(1, len(names))
        existing = {
            f"old{i}": rnd.sample(names, rnd.randint(1, len(names)))
            for i in range(rnd.randint(0, 15))
        }
        records = list(existing) + [f"new{i}" for i in range(rnd.randint(0, 50))]
        rnd.shuffle(records)
        out = assign(records, names, per_record, existing)
        _check_assignment(out, records, names, per_record, existing)
        before = Counter(a for who in existing.values() for a in who)
        spread_before = max(before.get(a, 0) for a in names) - min(before.get(a, 0) for a in names)
        full = all(len(who) >= per_record for who in existing.values())
        if full:  # no top-up: the new records never widen the spread beyond max(1, before)
            after = Counter(a for _, a in out)
            spread = max(after.get(a, 0) for a in names) - min(after.get(a, 0) for a in names)
            assert spread <= max(1, spread_before)


def test_assign_spreads_the_pairs() -> None:
    # Four SMEs, two per record: every pair overlaps (a pairwise kappa needs it).
    out = assign([f"r{i}" for i in range(24)], ["a", "b", "c", "d"], 2)
    pairs: Counter[tuple[str, ...]] = Counter()
    for i in range(0, len(out), 2):
        pairs[tuple(sorted((out[i][1], out[i + 1][1])))] += 1
    assert set(pairs) == set(itertools.combinations("abcd", 2))


@pytest.mark.parametrize(
    ("names", "per_record", "message"),
    [
        (["alice", "bob"], 3, "per-record is 3 but only 2 annotator(s) were given (alice, bob)"),
        (["alice", "bob"], 0, "per-record must be a whole number of 1 or more, not 0"),
        (["alice", "bob", "alice"], 2, "annotator names are repeated: alice"),
        (["alice", " "], 1, "an annotator name is empty"),
        ([], 1, "per-record is 1 but only 0 annotator(s) were given"),
    ],
)
def test_assign_bad_arguments(names: list[str], per_record: int, message: str) -> None:
    with pytest.raises(AssignmentError) as info:
        assign(["r1"], names, per_record)
    assert message in str(info.value)
    assert isinstance(info.value, ConfigError) and info.value.exit_code == 2


# --------------------------------------------------------------------------- output


def _small_results() -> list[AnnotationAgreement]:
    return [
        agreement("correctness", ratings_from_table(KRIPPENDORFF, CODERS)),
        agreement("grant", pairs_to_ratings([("yes", "no"), ("no", "no"), ("yes", "yes")])),
    ]


def test_to_json_has_every_figure() -> None:
    data = to_json(_small_results()[0])
    text = json.dumps(data)
    assert json.loads(text) == data
    labels = data["labels"]
    assert isinstance(labels, dict)
    assert labels["krippendorff_alpha"]["value"] == pytest.approx(0.7434, abs=1e-4)
    assert labels["fleiss_kappa"]["value"] is None and labels["fleiss_kappa"]["reason"]
    assert len(labels["cohen_kappa"]) == 6 and len(labels["confusion"]) == 6
    scores = data["scores"]
    assert isinstance(scores, dict)
    assert scores["krippendorff_alpha"]["value"] == pytest.approx(0.8491, abs=1e-4)
    assert len(scores["weighted_cohen_kappa"]) == 6
    disputes = data["disagreements"]
    assert isinstance(disputes, list) and disputes[0]["record_id"] == "u06"
    assert disputes[0]["ratings"][0] == {
        "annotator": "A",
        "label": "1",
        "score": 1.0,
        "sheet_row": 7,
    }


def test_tabs() -> None:
    results = _small_results()
    rows = agreement_rows(results)
    assert rows[0] == ["annotation", "kind", "statistic", "annotators", "value", "records", "note"]
    assert [
        "correctness",
        "label",
        "krippendorff_alpha_nominal",
        "A, B, C, D",
        0.7434,
        11,
        "",
    ] in rows
    assert all(len(r) == len(rows[0]) for r in rows)
    tab = disagreement_rows(results, lambda rid: f"http://127.0.0.1:6006/spans/{rid}")
    assert tab[0] == [
        "annotation",
        "record_id",
        "A",
        "B",
        "C",
        "D",
        "ann",
        "bea",
        "sheet_rows",
        "link",
    ]
    link = "http://127.0.0.1:6006/spans/u06"
    assert tab[1] == [
        "correctness",
        "u06",
        "1 / 1",
        "2 / 2",
        "3 / 3",
        "4 / 4",
        "",
        "",
        "7, 16, 26, 37",
        link,
    ]
    assert tab[-1][:2] == ["grant", "r0"] and tab[-1][6:8] == ["yes", "no"]
    assert disagreement_rows(results)[1][-1] == ""
    assert all(len(r) == len(tab[0]) for r in tab)


@pytest.fixture
def mpl_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # matplotlib's font cache goes to a temp folder, never the user's.
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path_factory.getbasetemp() / "mplconfig"))


def test_write_report_html(tmp_path: Path, mpl_home: None) -> None:
    results: list[AnnotationAgreement | ag.JudgeAgreement] = list(_small_results())
    human = pairs_to_ratings([("yes", "no"), ("no", "no"), ("yes", "yes")])
    results.append(judge_vs_human("grant", human, {"r1": JudgeVerdict("yes", None, "why <b>")}))
    path = tmp_path / "report.html"
    write_report(results, path, lambda rid: f"http://127.0.0.1:6006/spans/{rid}")
    text = path.read_text(encoding="utf-8")
    assert "http://127.0.0.1:6006/spans/u06" in text
    assert text.startswith("<!DOCTYPE html>")
    names = ["krippendorff_alpha_nominal", "fleiss_kappa", "cohen_kappa", "weighted_cohen_kappa"]
    names += ["percent_agreement", "correctness: A x B", "grant: human majority x judge"]
    for name in names:
        assert name in text
    assert text.count("data:image/png;base64,") == 6 + 1 + 1
    assert "why &lt;b&gt;" in text and "why <b>" not in text  # explanations are escaped


def test_write_report_png(tmp_path: Path, mpl_home: None) -> None:
    path = tmp_path / "heatmaps.png"
    write_report(_small_results(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = tmp_path / "empty.png"
    write_report([agreement("solo", [Rating("r1", "ann", "a", None, 2)])], empty)
    assert empty.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["report.pdf", "report", "report.htm"])
def test_write_report_bad_suffix(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError) as info:
        write_report(_small_results(), tmp_path / name)
    assert ".html or .png" in str(info.value) and name in str(info.value)
    assert not (tmp_path / name).exists()


def test_importing_the_module_loads_no_statistics_library() -> None:
    # `annobridge --help` must stay fast: the statistics and chart libraries load on use.
    code = (
        "import sys, bridge; before = set(sys.modules); import bridge.agreement; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "heavy = sorted(new & {'sklearn', 'statsmodels', 'krippendorff', 'matplotlib', 'scipy'}); "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_score_level_is_checked() -> None:
    with pytest.raises(ConfigError, match="'interval' or 'ordinal'"):
        agreement("x", [], score_level="ratio")  # type: ignore[arg-type]
