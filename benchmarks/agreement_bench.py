"""Agreement on 100,000 ratings: ``bridge.agreement.agreement`` against a plain pandas baseline.

    .venv/bin/python benchmarks/agreement_bench.py [--ratings 100000] [--rounds 5]

The ratings are built in memory (reading the sheet is measured by excel_bulk.py): 3
annotators, 5 labels, a 1-5 score on about half of the ratings, every record labelled by all
three (the last one cut short), annotators agreeing with a hidden "truth" 70% of the time, and
1% of the ratings given twice (a later row correcting an earlier one).

Both sides start from the same list of ``Rating`` values and produce the same figures:
Krippendorff's alpha (nominal for labels, interval for scores), Cohen's kappa per pair
(quadratic-weighted for scores), Fleiss' kappa, percent agreement, the confusion table per
pair and the disputed records sorted most-disputed first. The baseline is what one would write
with pandas: a DataFrame, ``drop_duplicates``, ``pivot``, ``groupby`` value counts, and the same
library calls (krippendorff, scikit-learn, statsmodels); its disputed records stay a DataFrame
(annobridge builds one object per disputed record, for the tabs and the JSON).

The figures of both are compared before timing. Prints the medians over the rounds and the
ratio annobridge / baseline (target: <= 1.0).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.agreement import Rating, agreement  # noqa: E402

LABELS = ["correct", "incorrect", "partially_correct", "hallucination", "refusal"]
ANNOTATORS = ["alice", "bob", "carol"]


def build(n: int, seed: int = 14) -> list[Rating]:
    rnd = random.Random(seed)
    out: list[Rating] = []
    row = 2
    unit = 0
    while len(out) < n:
        truth = rnd.randrange(len(LABELS))
        for who in ANNOTATORS:
            if len(out) >= n:
                break
            lab = truth if rnd.random() < 0.7 else rnd.randrange(len(LABELS))
            score = (
                float(min(5, max(1, lab + 1 + rnd.choice((-1, 0, 0, 1)))))
                if rnd.random() < 0.5
                else None
            )
            if rnd.random() < 0.01 and len(out) < n - 1:
                out.append(Rating(f"span-{unit:06d}", who, LABELS[rnd.randrange(5)], None, row))
                row += 1
            out.append(Rating(f"span-{unit:06d}", who, LABELS[lab], score, row))
            row += 1
        unit += 1
    return out


def baseline(ratings: list[Rating]) -> dict[str, Any]:
    """pandas groupby/pivot + the same library calls."""
    import krippendorff
    import numpy as np
    import pandas as pd
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import fleiss_kappa

    df = pd.DataFrame(
        {
            "record_id": [r.record_id for r in ratings],
            "annotator": [r.annotator for r in ratings],
            "label": [r.label for r in ratings],
            "score": [r.score for r in ratings],
            "row": [r.sheet_row for r in ratings],
        }
    )
    df = df.sort_values("row").drop_duplicates(["record_id", "annotator"], keep="last")
    labels = df.pivot(index="record_id", columns="annotator", values="label")
    scores = df.pivot(index="record_id", columns="annotator", values="score").astype(float)
    rows = df.pivot(index="record_id", columns="annotator", values="row")
    out: dict[str, Any] = {}
    # labels: value counts per record -> krippendorff, fleiss, percent
    counts = (
        df.dropna(subset=["label"]).groupby(["record_id", "label"]).size().unstack(fill_value=0)
    )
    m = counts.sum(axis=1)
    pairable = counts[m >= 2].to_numpy(dtype=float)
    out["alpha"] = krippendorff.alpha(value_counts=pairable, level_of_measurement="nominal")
    mp = pairable.sum(axis=1)
    out["percent"] = float(((pairable * (pairable - 1)).sum(axis=1) / (mp * (mp - 1))).mean())
    out["fleiss"] = fleiss_kappa(pairable, method="fleiss") if mp.min() == mp.max() else None
    cats = sorted(counts.columns)
    kappas = {}
    confusion = {}
    wk = {}
    ann = sorted(labels.columns)
    for i, a in enumerate(ann):
        for b in ann[i + 1 :]:
            both = labels[[a, b]].dropna()
            kappas[(a, b)] = cohen_kappa_score(both[a], both[b], labels=cats)
            confusion[(a, b)] = pd.crosstab(both[a], both[b]).reindex(
                index=cats, columns=cats, fill_value=0
            )
            sb = scores[[a, b]].dropna()
            dom = np.unique(scores.stack().to_numpy())
            wk[(a, b)] = cohen_kappa_score(sb[a], sb[b], labels=dom, weights="quadratic")
    out["kappas"] = kappas
    out["weighted"] = wk
    out["confusion"] = confusion
    scounts = (
        df.dropna(subset=["score"]).groupby(["record_id", "score"]).size().unstack(fill_value=0)
    )
    sp = scounts[scounts.sum(axis=1) >= 2]
    out["score_alpha"] = krippendorff.alpha(
        value_counts=sp.to_numpy(dtype=float),
        value_domain=sp.columns.to_numpy(dtype=float),
        level_of_measurement="interval",
    )
    # disputed records: labels not unanimous or scores not equal, most disputed first
    nlab = labels.notna().sum(axis=1)
    top = counts.max(axis=1).reindex(labels.index, fill_value=0)
    share = (top / nlab.where(nlab > 0)).fillna(1.0)
    spread = (scores.max(axis=1) - scores.min(axis=1)).where(scores.notna().sum(axis=1) >= 2, 0.0)
    spread = spread.fillna(0.0)
    disputed = ((nlab >= 2) & (top < nlab)) | (spread > 0)
    table = pd.concat(
        [labels.add_prefix("label_"), scores.add_prefix("score_"), rows.add_prefix("row_")], axis=1
    )
    table["share"] = share
    table["raters"] = rows.notna().sum(axis=1)
    table["spread"] = spread
    table["first_row"] = rows.min(axis=1)
    table = table[disputed].sort_values(
        ["share", "raters", "spread", "first_row"], ascending=[True, False, False, True]
    )
    out["disputed"] = table
    return out


def check(ours: Any, base: dict[str, Any]) -> None:
    import math

    lab = ours.labels
    assert math.isclose(lab.alpha.value, base["alpha"], rel_tol=1e-9), (lab.alpha, base["alpha"])
    assert math.isclose(lab.percent.value, base["percent"], rel_tol=1e-9)
    assert math.isclose(ours.scores.alpha.value, base["score_alpha"], rel_tol=1e-9)
    for p in lab.cohen:
        assert math.isclose(p.figure.value, base["kappas"][(p.a, p.b)], rel_tol=1e-9)
    for p in ours.scores.weighted_cohen:
        assert math.isclose(p.figure.value, base["weighted"][(p.a, p.b)], rel_tol=1e-9)
    assert len(ours.disagreements) == len(base["disputed"])
    assert [d.record_id for d in ours.disagreements] == list(base["disputed"].index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--xlsx", action="store_true", help="also time the whole command on a workbook"
    )
    args = parser.parse_args()
    ratings = build(args.ratings)
    # Warm up: the library imports (scikit-learn alone takes seconds) are not measured.
    ours = agreement("correctness", ratings)
    base = baseline(ratings)
    check(ours, base)
    times: dict[str, list[float]] = {"annobridge agreement()": [], "pandas baseline": []}
    for _ in range(args.rounds):
        t = time.perf_counter()
        agreement("correctness", ratings)
        times["annobridge agreement()"].append(time.perf_counter() - t)
        t = time.perf_counter()
        baseline(ratings)
        times["pandas baseline"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"{len(ratings):,} ratings, {ours.records:,} records, {len(ours.annotators)} annotators, "
        f"{len(ours.labels.categories) if ours.labels else 0} labels, "
        f"{len(ours.disagreements):,} disputed; medians of {args.rounds}:"
    )
    for k, v in med.items():
        print(f"  {k:<24} {v * 1000:8.1f} ms")
    ratio = med["annobridge agreement()"] / med["pandas baseline"]
    print(f"  ratio annobridge / baseline: {ratio:.2f} (target <= 1.0)")
    if args.xlsx:
        from_workbook(ratings, args.rounds, med["pandas baseline"])


MAPPING = """
source: {type: excel, path: ratings.xlsx, worksheet: Labels}
target: {type: phoenix, url: "http://127.0.0.1:9", annotate: session}
annotations:
  - name: correctness
    id_column: record
    label_column: label
    score_column: score
    annotator_column: annotator
    rules: {labels: [%s], score_min: 1, score_max: 5}
"""


def from_workbook(ratings: list[Rating], rounds: int, baseline_seconds: float) -> None:
    """The whole command on an .xlsx: ``rounds.measure`` (read, validate, figures; no tabs)
    against reading and validating the same sheet plus the pandas baseline, same run."""
    import tempfile

    import openpyxl

    from bridge.mapping import load_mapping
    from bridge.pipeline import read_spec
    from bridge.registry import open_source
    from bridge.rounds import measure
    from bridge.rules import evaluate

    # a sheet holds one row per record and annotator (sync's validation refuses two)
    latest = list({(r.record_id, r.annotator): r for r in ratings}.values())
    with tempfile.TemporaryDirectory() as tmp:
        book = openpyxl.Workbook(write_only=True)
        ws = book.create_sheet("Labels")
        ws.append(["record", "label", "score", "annotator"])
        for r in latest:
            ws.append([r.record_id, r.label, r.score, r.annotator])
        book.save(Path(tmp) / "ratings.xlsx")
        (Path(tmp) / "m.yaml").write_text(MAPPING % ", ".join(LABELS), encoding="utf-8")
        mapping = load_mapping(Path(tmp) / "m.yaml")

        def read_and_validate() -> None:
            source = open_source(mapping)
            rows = source.read(read_spec(mapping))
            evaluate(rows, mapping.annotations, "session", source.label)

        warm = measure(mapping, write_tabs=False)
        (figures,) = warm.results
        if warm.left_out or figures.ratings != len(latest):
            raise SystemExit(f"the workbook did not read back as built: {warm.left_out}")
        times: dict[str, list[float]] = {"measure() on the xlsx": [], "read + validate": []}
        for _ in range(rounds):
            t = time.perf_counter()
            measure(mapping, write_tabs=False)
            times["measure() on the xlsx"].append(time.perf_counter() - t)
            t = time.perf_counter()
            read_and_validate()
            times["read + validate"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"  {k:<24} {v * 1000:8.1f} ms")
    budget = med["read + validate"] + baseline_seconds
    print(f"  the workbook: {len(latest):,} rows")
    # what measure() adds to reading and validating, against what the baseline takes
    added = med["measure() on the xlsx"] - med["read + validate"]
    print(
        f"  measure() - (read + validate): {added * 1000:.1f} ms (the baseline alone: "
        f"{baseline_seconds * 1000:.1f} ms)"
    )
    print(
        f"  ratio measure() / (read + validate + baseline): "
        f"{med['measure() on the xlsx'] / budget:.2f} (target <= 1.0)"
    )


if __name__ == "__main__":
    main()
