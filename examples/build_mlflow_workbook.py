"""Build examples/mlflow-labels.xlsx: SME labels for the traces seed_mlflow_traces.py makes.

Two sheets, one per way of naming a trace:

- "By request id": the app's client_request_id (req-0000, req-0001, ...), which the seed
  script sets itself, so this sheet fits any server seeded with it;
- "By trace id": MLflow's trace ids (tr-...), read from the seed script's output. Seeding is
  deterministic (``--seed``, one thread), so the committed workbook fits a fresh server
  seeded with the defaults; run this again after seeding with other settings.

    .venv/bin/python examples/build_mlflow_workbook.py --traces traces.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.styles import Font

HERE = Path(__file__).resolve().parent
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


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--traces", required=True, help="output of seed_mlflow_traces.py")
    parser.add_argument("--out", default=str(HERE / "mlflow-labels.xlsx"))
    args = parser.parse_args()
    build(json.loads(Path(args.traces).read_text()), Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
