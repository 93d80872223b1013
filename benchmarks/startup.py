"""Start-up time of the `annobridge` command, as a ratio to a bare interpreter in the same run.

    .venv/bin/python benchmarks/startup.py              # medians of 10
    .venv/bin/python benchmarks/startup.py --rounds 20 --json

Each round runs, one after the other in fresh processes: ``python -c pass`` (the floor),
``annobridge --version``, ``annobridge --help`` and ``annobridge validate`` of a generated
20-row workbook (an Excel mapping to Phoenix; validate reads and checks, it contacts nothing).
Every command is timed with ``time.perf_counter`` around ``subprocess.run``; the table shows
the median of the rounds, the median minus the bare interpreter's, and the ratio to it.

Goals (issue 13): --version and --help within 0.3 s of a bare interpreter; validate of a
20-row workbook within 1 s of it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openpyxl

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"--version": 0.3, "--help": 0.3, "validate": 1.0}

MAPPING = """\
source:
  type: excel
  path: labels.xlsx
  worksheet: Labels
target:
  type: phoenix
  url: http://127.0.0.1:9
annotations:
  - name: correctness
    id_column: span_id
    label_column: label
    score_column: score
    explanation_column: explanation
    annotator_column: annotator
    rules:
      labels: [correct, incorrect]
      score_min: 0
      score_max: 1
"""


def write_fixture(folder: Path, rows: int = 20) -> Path:
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Labels"
    ws.append(["span_id", "label", "score", "explanation", "annotator"])
    for i in range(rows):
        ws.append([f"{i + 1:016x}", "correct" if i % 2 else "incorrect", i % 2, "ok", "alice"])
    book.save(folder / "labels.xlsx")
    mapping = folder / "map.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    return mapping


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    exe = Path(sys.executable)
    annobridge = exe.parent / "annobridge"
    cli = [str(annobridge)] if annobridge.exists() else [str(exe), "-m", "bridge"]
    with tempfile.TemporaryDirectory() as tmp:
        # the runs lock and journal in the temporary folder, never the user's state folder
        os.environ["ANNOBRIDGE_STATE_DIR"] = str(Path(tmp) / "state")
        mapping = write_fixture(Path(tmp))
        commands = {
            "python -c pass": [str(exe), "-c", "pass"],
            "--version": [*cli, "--version"],
            "--help": [*cli, "--help"],
            "validate": [*cli, "validate", str(mapping), "--quiet"],
        }
        for argv in commands.values():  # warm the file cache and the .pyc files
            timed(argv)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, argv in commands.items():
                times[name].append(timed(argv))

    medians = {name: statistics.median(t) for name, t in times.items()}
    floor = medians["python -c pass"]
    report = {
        name: {
            "median_s": round(m, 4),
            "over_bare_s": round(m - floor, 4),
            "ratio": round(m / floor, 2),
            "goal_over_bare_s": GOALS.get(name),
            "met": (m - floor) <= GOALS[name] if name in GOALS else None,
        }
        for name, m in medians.items()
    }
    if args.json:
        print(json.dumps({"rounds": args.rounds, "results": report}, indent=2))
        return
    print(f"medians of {args.rounds} rounds (python {sys.version.split()[0]})")
    print(f"{'command':<16} {'median':>8} {'over bare':>10} {'ratio':>6}  goal")
    for name, r in report.items():
        goal = GOALS.get(name)
        verdict = "" if goal is None else f"<= +{goal:.1f} s: {'met' if r['met'] else 'MISSED'}"
        print(
            f"{name:<16} {r['median_s']:>7.3f}s {r['over_bare_s']:>+9.3f}s "
            f"{r['ratio']:>5.1f}x  {verdict}"
        )


if __name__ == "__main__":
    main()
