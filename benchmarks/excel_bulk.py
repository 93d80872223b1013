"""Bulk Excel: read+validate and status write-back of a 100,000-row workbook, against pandas
and openpyxl, in the same run.

    make bench          # or: .venv/bin/python benchmarks/excel_bulk.py --rounds 3
    .venv/bin/python benchmarks/excel_bulk.py --only read   # read+validate vs pandas only

The workbook is written the way Excel saves one (shared strings, row spans, a styled header, a
data validation, a formula column with its cached results, a second sheet), 8 columns of
labels plus the formula: span_id, name, label, score, explanation (~200 characters),
annotator, annotated_on (a date), needs_review (a boolean), chars = LEN(explanation).

Each measurement runs in a process of its own, and reports the wall time of the operation
(after the imports) and the process's peak RSS (``resource.getrusage``, imports included);
the table shows medians over the rounds:

- annobridge read+validate: ``ExcelSource.read`` (calamine) + ``rules.evaluate`` (pandera);
- pandas.read_excel(engine="openpyxl"): the usual way to get a sheet into Python;
- annobridge write-back: ``ExcelSource.write_status`` of all five status columns on every row
  (keys re-read with calamine, then the worksheet XML patched in one streaming pass);
- openpyxl load+save: what the write-back did before: ``load_workbook``, the same cells set,
  ``save``.

The write-backs also run on a 20,000-row workbook: how peak RSS grows with the rows shows
that the patch streams (its growth is calamine's key re-read) where openpyxl holds every cell.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LABELS = ["correct", "incorrect", "partially_correct", "hallucination", "refusal"]
HEADER = [
    "span_id",
    "name",
    "label",
    "score",
    "explanation",
    "annotator",
    "annotated_on",
    "needs_review",
    "chars",
]
WORDS = (
    "the answer cites the retrieved passage correctly but misses the second part of the "
    "question about pricing and the refund window so it is only partially useful to the user"
).split()
STATUS = {
    "sync_status": "synced",
    "synced_at": "2026-05-01T10:00:00Z",
    "sync_message": "",
}


def keys(rows: int) -> list[tuple[str, str]]:
    """(span_id, annotator) of every row, the same in the parent and in the children."""
    rnd = random.Random(7)
    return [(f"{rnd.getrandbits(64):016x}", f"sme{i % 7}@example.com") for i in range(rows)]


def make_workbook(path: Path, rows: int) -> None:
    from tests.builders import STYLE_DATE, Formula, raw_book

    rnd = random.Random(11)
    data = []
    for i, (span_id, annotator) in enumerate(keys(rows)):
        text = " ".join(rnd.choice(WORDS) for _ in range(36))[:200]
        data.append(
            [
                span_id,
                "llm.call",
                rnd.choice(LABELS),
                round(rnd.random(), 3),
                text,
                annotator,
                45_000 + i % 365,
                i % 9 == 0,
                Formula(f"LEN(E{i + 2})", len(text)),
            ]
        )
    last = rows + 1
    tail = (
        f'<dataValidations count="1"><dataValidation type="list" allowBlank="1" '
        f'sqref="C2:C{last}"><formula1>"{",".join(LABELS)}"</formula1></dataValidation>'
        "</dataValidations>"
    )
    styles = {f"G{r}": STYLE_DATE for r in range(2, last + 1)}
    raw_book(path, data, header=HEADER, styles=styles, tail=tail)


# --- the measured operations, one per child process -----------------------------------------

_BEFORE: dict[str, float] = {}


def _rss_mb() -> float:
    """The resident set size now (Linux), 0 where /proc is not there."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _start() -> float:
    """Note the memory in use before the operation (imports, its input) and start the clock."""
    _BEFORE["mb"] = _rss_mb()
    return time.perf_counter()


def _spec() -> Any:
    from bridge.records import StatusColumns
    from bridge.sources.base import ReadSpec

    return ReadSpec(
        columns=["span_id", "label", "score", "explanation", "annotator"],
        key_columns=["span_id", "annotator"],
        status=StatusColumns(),
    )


def read_validate(path: Path, rows: int) -> float:
    from bridge import rules
    from bridge.mapping import AnnotationSpec
    from bridge.sources.excel.source import ExcelSource

    spec = AnnotationSpec(
        name="correctness",
        id_column="span_id",
        label_column="label",
        score_column="score",
        explanation_column="explanation",
        annotator_column="annotator",
        rules={"labels": LABELS, "score_min": 0, "score_max": 1},
    )
    started = _start()
    found = ExcelSource(path).read(_spec())
    verdicts = rules.evaluate(found, [spec], "span", "bench")
    seconds = time.perf_counter() - started
    valid = sum(1 for v in verdicts if v.annotations)
    assert len(found) == rows and valid == rows, (len(found), valid)
    return seconds


def pandas_read(path: Path, rows: int) -> float:
    import pandas as pd

    started = _start()
    frame = pd.read_excel(path, engine="openpyxl")
    seconds = time.perf_counter() - started
    assert len(frame) == rows
    return seconds


def _updates(rows: int) -> list[Any]:
    from bridge.records import StatusUpdate

    return [
        StatusUpdate(i + 2, key, 0, {**STATUS, "sync_id": f"id-{key[0]}", "sync_hash": key[0]})
        for i, key in enumerate(keys(rows))
    ]


def annobridge_write(path: Path, rows: int) -> float:
    from bridge.sources.excel.source import ExcelSource

    updates = _updates(rows)
    started = _start()
    report = ExcelSource(path).write_status(_spec(), updates)
    seconds = time.perf_counter() - started
    assert report.written == rows, report.written
    return seconds


def openpyxl_write(path: Path, rows: int) -> float:
    import openpyxl  # and nothing of annobridge, whose imports would weigh on its memory

    # the same cells as the annobridge write-back
    values = [[*STATUS.values(), f"id-{key[0]}", key[0]] for key in keys(rows)]
    started = _start()
    book = openpyxl.load_workbook(path, rich_text=True)
    ws = book["Labels"]
    first = len(HEADER) + 1
    for j, name in enumerate([*STATUS, "sync_id", "sync_hash"]):
        ws.cell(row=1, column=first + j, value=name)
    for i, row in enumerate(values, start=2):
        for j, text in enumerate(row):
            if text:
                ws.cell(row=i, column=first + j, value=text).data_type = "s"
    book.save(path)
    return time.perf_counter() - started


def imports_annobridge(path: Path, rows: int) -> float:
    import bridge.rules
    import bridge.sources.excel  # noqa: F401

    return 0.0


def imports_pandas_openpyxl(path: Path, rows: int) -> float:
    import openpyxl  # noqa: F401
    import pandas  # noqa: F401

    return 0.0


OPERATIONS = {
    "read_validate": read_validate,
    "pandas_read": pandas_read,
    "annobridge_write": annobridge_write,
    "openpyxl_write": openpyxl_write,
    "imports_annobridge": imports_annobridge,
    "imports_pandas_openpyxl": imports_pandas_openpyxl,
}


def child(operation: str, path: Path, rows: int) -> None:
    seconds = OPERATIONS[operation](path, rows)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    added = peak_mb - _BEFORE["mb"] if "mb" in _BEFORE else 0.0
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "added_mb": added}))


def measure(operation: str, book: Path, rows: int, work: Path) -> dict[str, float]:
    """Run one operation in a fresh process, on a fresh copy of the workbook when it writes."""
    path = book
    if operation.endswith("_write"):
        path = work / f"copy-{operation}.xlsx"
        shutil.copy(book, path)
    done = subprocess.run(
        [sys.executable, __file__, "--child", operation, str(path), str(rows)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode:
        raise SystemExit(f"{operation} failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=20_000, help="rows of the memory check")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("OPERATION", "PATH", "ROWS"))
    parser.add_argument("--make", nargs=2, metavar=("PATH", "ROWS"))
    parser.add_argument(
        "--only",
        choices=["read", "write"],
        help="run only the reads (read+validate, pandas.read_excel) or only the write-backs; "
        "the results file is then written only when --out is given",
    )
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/excel_bulk.json")
    args = parser.parse_args()
    if args.out is None and not args.only:
        args.out = ROOT / "benchmarks/results/excel_bulk.json"
    if args.child:
        child(args.child[0], Path(args.child[1]), int(args.child[2]))
        return
    if args.make:
        make_workbook(Path(args.make[0]), int(args.make[1]))
        return
    plan = [
        ("annobridge read+validate", "read_validate", args.rows),
        ("pandas.read_excel (openpyxl)", "pandas_read", args.rows),
        ("annobridge status write-back", "annobridge_write", args.rows),
        ("openpyxl load+set+save", "openpyxl_write", args.rows),
        ("annobridge status write-back", "annobridge_write", args.small),
        ("openpyxl load+set+save", "openpyxl_write", args.small),
        ("(imports only: annobridge)", "imports_annobridge", args.small),
        ("(imports only: pandas+openpyxl)", "imports_pandas_openpyxl", args.small),
    ]
    if args.only == "read":
        plan = [p for p in plan if p[1] in ("read_validate", "pandas_read")]
    elif args.only == "write":
        plan = [p for p in plan if p[1].endswith("_write")]
    with tempfile.TemporaryDirectory(prefix="annobridge-bench-") as tmp:
        work = Path(tmp)
        books = {}
        for rows in sorted({rows for _, _, rows in plan}):
            started = time.perf_counter()
            books[rows] = work / f"labels-{rows}.xlsx"
            # in a process of its own: this one stays small, and a child's peak RSS, which
            # starts from its parent's at exec on Linux, is its own
            subprocess.run(
                [sys.executable, __file__, "--make", str(books[rows]), str(rows)],
                check=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            size = books[rows].stat().st_size / 1e6
            print(
                f"workbook: {rows:,} rows, {size:.1f} MB, "
                f"written in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
        runs: dict[tuple[str, int], list[dict[str, float]]] = {}
        for round_no in range(1, args.rounds + 1):
            for _, operation, rows in plan:
                got = measure(operation, books[rows], rows, work)
                runs.setdefault((operation, rows), []).append(got)
                print(
                    f"round {round_no}: {operation} {rows:,} rows: {got['seconds']:.2f} s, "
                    f"peak {got['peak_mb']:.0f} MB, added {got['added_mb']:.0f} MB",
                    flush=True,
                )
    parent_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this process: {parent_mb:.0f} MB, the floor of every child's peak RSS)")
    medians = {
        key: {
            "seconds": statistics.median(r["seconds"] for r in found),
            "peak_mb": statistics.median(r["peak_mb"] for r in found),
            "added_mb": statistics.median(r["added_mb"] for r in found),
            "seconds_all": [round(r["seconds"], 3) for r in found],
            "peak_mb_all": [round(r["peak_mb"], 1) for r in found],
        }
        for key, found in runs.items()
    }
    baseline = {
        "read_validate": "pandas_read",
        "pandas_read": "pandas_read",
        "annobridge_write": "openpyxl_write",
        "openpyxl_write": "openpyxl_write",
        "imports_annobridge": "imports_annobridge",
        "imports_pandas_openpyxl": "imports_pandas_openpyxl",
    }
    print()
    print(
        f"{'operation':<32}{'rows':>9}{'wall s':>9}{'peak MB':>9}{'added':>7}"
        "   vs baseline (time, peak memory)"
    )
    rows_out = []
    for label, operation, rows in plan:
        m = medians[(operation, rows)]
        base = medians[(baseline[operation], rows)] if (baseline[operation], rows) in medians else m
        ratio_t = m["seconds"] / base["seconds"] if base["seconds"] else 1.0
        ratio_m = m["peak_mb"] / base["peak_mb"]
        if operation.startswith("imports"):
            versus = "interpreter and imports, nothing read"
        elif baseline[operation] == operation:
            versus = "baseline"
        else:
            versus = f"{ratio_t:.2f}x time, {ratio_m:.2f}x memory of {baseline[operation]}"
        shown = "" if operation.startswith("imports") else f"{m['seconds']:.2f}"
        added = "" if operation.startswith("imports") else f"{m['added_mb']:.0f}"
        print(f"{label:<32}{rows:>9,}{shown:>9}{m['peak_mb']:>9.0f}{added:>7}   {versus}")
        rows_out.append({"operation": label, "rows": rows, **m, "vs": versus})
    print(
        "peak MB: the process's peak RSS (interpreter and imports included); added: peak RSS "
        "minus the RSS just before the operation started (its input, e.g. the updates, built)"
    )
    growth = {}
    for operation in ("annobridge_write", "openpyxl_write"):
        if (operation, args.rows) not in medians or (operation, args.small) not in medians:
            continue
        big, small = medians[(operation, args.rows)], medians[(operation, args.small)]
        per_10k = (big["peak_mb"] - small["peak_mb"]) / ((args.rows - args.small) / 10_000)
        added_10k = (big["added_mb"] - small["added_mb"]) / ((args.rows - args.small) / 10_000)
        growth[operation] = {"peak_mb_per_10k_rows": per_10k, "added_mb_per_10k_rows": added_10k}
        print(
            f"memory growth of {operation}: peak {small['peak_mb']:.0f} MB at {args.small:,} rows "
            f"-> {big['peak_mb']:.0f} MB at {args.rows:,} rows = {per_10k:.1f} MB per 10,000 "
            f"rows (added by the operation itself: {added_10k:.1f} MB per 10,000 rows)"
        )
    if args.out is None:
        print("(--only: no results file written; give --out to write one)")
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "rows": args.rows,
                "small": args.small,
                "rounds": args.rounds,
                "python": sys.version.split()[0],
                "cpus": os.cpu_count(),
                "results": rows_out,
                "memory_growth": growth,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
