"""Build examples/mlflow-labels.xlsx: SME labels for the traces seed_mlflow_traces.py makes.

Two sheets, one per way of naming a trace:

- "By request id": the app's client_request_id (req-0000, req-0001, ...), which the seed
  script sets itself, so this sheet fits any server seeded with it;
- "By trace id": MLflow's trace ids (tr-...), read from the seed script's output, so build
  the workbook from the traces you seeded (the committed one fits a fresh server seeded with
  ``--seed 7``, one thread).

With ``--mappings``, the two shipped MLflow mappings are copied beside the workbook, pointing
at it: the README's MLflow steps work on those copies in a git-ignored folder, so nothing
tracked changes.

    .venv/bin/python examples/build_mlflow_workbook.py --traces traces.json \
        --out examples/.mlflow-demo/mlflow-labels.xlsx --mappings
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.styles import Font

HERE = Path(__file__).resolve().parent
MAPPINGS = ("mlflow-request-ids.yaml", "mlflow-trace-ids.yaml")
SHIPPED_PATH = "../examples/mlflow-labels.xlsx"
WRONG = {  # the demo app's wrong answers, and what it should have said
    "Jupiter is known as the red planet.": "Mars is known as the red planet.",
    "Vincent van Gogh painted the Mona Lisa.": "Leonardo da Vinci painted the Mona Lisa.",
}
ANNOTATORS = ["alice@example.com", "bob@example.com"]


def label_rows(traces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for i, t in enumerate(traces):
        wrong = t["answer"] in WRONG
        rows.append(
            {
                "trace_id": t["trace_id"],
                "request_id": t["client_request_id"],
                "question": t["question"],
                "answer": t["answer"],
                "label": "incorrect" if wrong else "correct",
                "helpfulness": 1 if wrong else 4 + i % 2,
                "explanation": "contradicts the reference" if wrong else "matches the reference",
                "expected_answer": WRONG.get(t["answer"]),
                "annotator": ANNOTATORS[i % 2],
            }
        )
    return rows


def add_sheet(book: Any, title: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
    ws = book.create_sheet(title)
    ws.append(columns)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        ws.append([row[c] for c in columns])
    for letter, width in zip("ABCDEFGHI", (38, 34, 44, 11, 12, 28, 42, 20, 20), strict=False):
        ws.column_dimensions[letter].width = width
    ws.freeze_panes = "A2"


def build(traces: list[dict[str, Any]], out: Path) -> None:
    rows = label_rows([t for t in traces if t.get("client_request_id")][:10])
    book = openpyxl.Workbook()
    book.remove(book.active)
    add_sheet(
        book,
        "By request id",
        [
            "request_id", "question", "answer", "label", "helpfulness", "explanation",
            "expected_answer", "annotator",
        ],
        rows,
    )  # fmt: skip
    add_sheet(
        book,
        "By trace id",
        ["trace_id", "question", "answer", "label", "explanation", "annotator"],
        rows,
    )
    book.save(out)


def copy_mappings(out: Path) -> list[Path]:
    """The shipped MLflow mappings, beside ``out`` and pointing at it."""
    written = []
    for name in MAPPINGS:
        text = (HERE.parent / "mappings" / name).read_text(encoding="utf-8")
        if SHIPPED_PATH not in text:  # pragma: no cover - the mappings and this script agree
            raise SystemExit(f"mappings/{name} does not name {SHIPPED_PATH}")
        target = out.parent / name
        target.write_text(text.replace(SHIPPED_PATH, out.name), encoding="utf-8")
        written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--traces", required=True, help="output of seed_mlflow_traces.py")
    parser.add_argument("--out", default=str(HERE / "mlflow-labels.xlsx"))
    parser.add_argument(
        "--mappings",
        action="store_true",
        help="also copy mappings/mlflow-*.yaml beside --out, pointing at it",
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    build(json.loads(Path(args.traces).read_text()), out)
    print(f"wrote {out}")
    if args.mappings:
        for path in copy_mappings(out):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
