"""Google Sheets requests per sync, at 1k, 10k and 50k rows, against the local Sheets stand-in.

Each size runs real syncs (``bridge.pipeline.run``) of a sheet of labels through the gsheet
source and gspread's HTTP client, into a platform stand-in that accepts every annotation at
once (so the numbers are the sheet's side only):

- the first sync: every row is sent and gets its five status cells written back;
- the second sync: nothing changed, so nothing is sent and nothing written.

The stand-in counts the Sheets API requests each sync makes (the quota Google counts: 60 per
minute per user), and the write bytes; the source's read and write-back are timed apart from
the rest of the sync (rules, journal). Prints a table and writes
benchmarks/results/gsheets_requests.json.

    .venv/bin/python benchmarks/gsheets_requests.py [--sizes 1000,10000,50000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bridge.mapping import parse_mapping  # noqa: E402
from bridge.pipeline import run  # noqa: E402
from bridge.records import Annotation, Outcome, Row, StatusUpdate, WriteReport  # noqa: E402
from bridge.sources.base import ReadSpec  # noqa: E402
from bridge.sources.gsheets.source import GSheetsSource  # noqa: E402
from tests.sheets_standin import SheetsStandIn  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "gsheets_requests.json"
KEY = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
HEADER = ["span_id", "input", "output", "label", "score", "explanation", "annotator"]


class InstantTarget:
    """Accepts every annotation at once, with an id shaped like Phoenix's."""

    name = "instant"
    kind = "span"

    def fingerprint(self) -> str:
        return "instant|bench"

    def payload(self, annotation: Annotation) -> dict[str, Any]:
        return {}

    def check(self) -> None:
        pass

    def send(self, annotations: Sequence[Annotation], progress: Any = None) -> list[Outcome]:
        if progress:
            progress(len(annotations))
        return [Outcome.ok(f"U3BhbkFubm90YXRpb246{i:08d}") for i in range(len(annotations))]

    def close(self) -> None:
        pass


class TimedSource(GSheetsSource):
    """The gsheet source, timing its own read and write-back."""

    read_s = 0.0
    write_s = 0.0

    def read(self, spec: ReadSpec) -> list[Row]:
        started = time.perf_counter()
        try:
            return super().read(spec)
        finally:
            self.read_s = time.perf_counter() - started

    def write_status(self, spec: ReadSpec, updates: Sequence[StatusUpdate]) -> WriteReport:
        started = time.perf_counter()
        try:
            return super().write_status(spec, updates)
        finally:
            self.write_s = time.perf_counter() - started


def sheet(n: int) -> list[list[Any]]:
    labels = ("correct", "incorrect")
    return [HEADER] + [
        [
            f"{i:016x}",
            f"What is the capital of country {i}?",
            f"The capital of country {i} is City {i}.",
            labels[i % 2],
            (i % 11) / 10,
            f"checked against the reference answer ({i})",
            f"sme-{i % 5}@example.com",
        ]
        for i in range(1, n + 1)
    ]


def mapping(folder: Path) -> Any:
    doc = {
        "source": {"type": "gsheet", "spreadsheet": KEY, "worksheet": "Labels"},
        "target": {"type": "phoenix", "url": "http://127.0.0.1:9"},
        "annotations": [
            {
                "name": "correctness",
                "id_column": "span_id",
                "label_column": "label",
                "score_column": "score",
                "explanation_column": "explanation",
                "annotator_column": "annotator",
                "rules": {"labels": ["correct", "incorrect"], "score_min": 0, "score_max": 1},
            }
        ],
    }
    return parse_mapping(doc, folder / "labels.yaml")


def one_size(n: int, folder: Path) -> dict[str, Any]:
    with SheetsStandIn() as standin:
        standin.add_spreadsheet(KEY, "Bench", sheets=[("Labels", 0)])  # 1000 x 26, as Sheets makes
        standin.put(KEY, "Labels", sheet(n))
        out: dict[str, Any] = {"rows": n}
        for phase in ("first", "second"):
            standin.reset_log()
            source = TimedSource(KEY, "Labels", api_base=standin.url, session=requests.Session())
            started = time.perf_counter()
            with source:
                result = run(mapping(folder), source=source, target=InstantTarget())
            writes = [r for r in standin.log if r.kind == "write"]
            out[phase] = {
                "requests": standin.count(),
                "kinds": [r.kind for r in standin.log],
                "write_requests": len(writes),
                "write_bytes": [len(r.body) for r in writes],
                "synced": result.counts["synced"],
                "unchanged": result.counts["unchanged"],
                "statuses_written": result.statuses_written,
                "read_s": round(source.read_s, 3),
                "write_back_s": round(source.write_s, 3),
                "sync_s": round(time.perf_counter() - started, 3),
            }
        assert out["first"]["statuses_written"] == n, out
        assert out["second"]["unchanged"] == n, out
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000", help="comma-separated row counts")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ANNOBRIDGE_STATE_DIR"] = str(Path(tmp) / "state")
        for n in sizes:
            results.append(one_size(n, Path(tmp)))
    print("Google Sheets API requests per sync (local stand-in of the Sheets API v4)")
    print(
        f"{'rows':>7}  {'requests':>8}  {'of which writes':>15}  {'write MB':>10}  "
        f"{'read s':>6}  {'write-back s':>12}  {'sync s':>6}  {'next sync':>9}"
    )
    for r in results:
        first, second = r["first"], r["second"]
        mb = "+".join(f"{b / 1e6:.2f}" for b in first["write_bytes"])
        print(
            f"{r['rows']:>7}  {first['requests']:>8}  {first['write_requests']:>15}  {mb:>10}  "
            f"{first['read_s']:>6.2f}  {first['write_back_s']:>12.2f}  {first['sync_s']:>6.2f}  "
            f"{second['requests']:>9}"
        )
    print(
        "requests: the first sync (every row sent, five status cells each written back); "
        "next sync: nothing changed"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                "results": results,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
