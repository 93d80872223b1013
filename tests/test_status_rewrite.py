"""A status that has not changed is not written again, even when the sheet stores it differently.

A message that starts like a formula (``=``, ``+``, ``-``, ``@``) is stored with a ``'`` in
front; compared with the new message as it was, it never matched, and the row was rewritten
on every run (issue 16, item 4): two more Sheets requests and a new ``synced_at`` each time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import requests

from bridge.mapping import load_mapping, parse_mapping
from bridge.pipeline import run
from bridge.records import Annotation, Outcome
from bridge.sources.gsheets.source import GSheetsSource
from tests.sheets_standin import SheetsStandIn

SPANS = [f"{i:016x}" for i in range(1, 6)]
# what the platform says of each span: rejected with a message that starts like a formula
REJECTED = {SPANS[0]: "=no such span", SPANS[1]: "+1 more needed", SPANS[2]: "-1 is too low"}
# and what its own checks refuse before sending (invalid)
INVALID = {SPANS[3]: "@handle is not a known user"}
KEY = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"


class FormulaishTarget:
    """Rejects some spans and refuses others with messages that start like formulas."""

    name = "fake"
    kind = "span"

    def __init__(self) -> None:
        self.sent: list[Annotation] = []

    def fingerprint(self) -> str:
        return "fake|test"

    def payload(self, annotation: Annotation) -> dict[str, Any]:
        return {"id": annotation.target_id}

    def check(self) -> None:
        pass

    def problems(self, annotation: Annotation) -> list[str]:
        found = INVALID.get(annotation.target_id)
        return [found] if found else []

    def send(self, annotations: Sequence[Annotation], progress: Any = None) -> list[Outcome]:
        self.sent.extend(annotations)
        if progress:
            progress(len(annotations))
        return [
            Outcome.rejected(REJECTED[a.target_id])
            if a.target_id in REJECTED
            else Outcome.ok(f"id-{a.target_id}")
            for a in annotations
        ]

    def close(self) -> None:
        pass


ROWS = [[s, "correct"] for s in SPANS]
ANNOTATIONS = """
annotations:
  - {name: correctness, id_column: span_id, label_column: label, annotator: sme}
"""


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANNOBRIDGE_STATE_DIR", str(tmp_path / "state"))


def _check_first_run(result: Any) -> None:
    assert result.counts["rejected"] == 3 and result.counts["invalid"] == 1
    assert result.counts["synced"] == 1 and result.statuses_written == 5


@pytest.mark.parametrize("kind", ["excel", "csv"])
def test_a_formula_like_message_is_not_rewritten_on_every_run(tmp_path: Path, kind: str) -> None:
    if kind == "excel":
        book = openpyxl.Workbook()
        ws = book.active
        assert ws is not None
        ws.title = "Labels"
        ws.append(["span_id", "label"])
        for r in ROWS:
            ws.append(r)
        sheet = tmp_path / "labels.xlsx"
        book.save(sheet)
        source = "source: {type: excel, path: labels.xlsx, worksheet: Labels}"
    else:
        sheet = tmp_path / "labels.csv"
        sheet.write_text("span_id,label\n" + "".join(f"{s},{lbl}\n" for s, lbl in ROWS))
        source = "source: {type: csv, path: labels.csv}"
    path = tmp_path / "m.yaml"
    path.write_text(f'{source}\ntarget: {{type: phoenix, url: "http://127.0.0.1:9"}}{ANNOTATIONS}')
    mapping = load_mapping(path)
    target = FormulaishTarget()
    _check_first_run(run(mapping, target=target))
    stored = sheet.read_bytes()
    assert b"'=no such span" in stored or kind == "excel"  # inert text, as promised

    again = run(mapping, target=target)
    assert again.counts["rejected"] == 3 and again.counts["invalid"] == 1
    assert again.statuses_written == 0  # the same statuses: nothing to write
    assert sheet.read_bytes() == stored  # not even synced_at changed


@pytest.fixture
def standin() -> Iterator[SheetsStandIn]:
    with SheetsStandIn() as server:
        server.add_spreadsheet(KEY, "SME labels", sheets=[("Labels", 0)])
        yield server


def test_a_formula_like_message_costs_no_sheets_request_on_a_rerun(
    standin: SheetsStandIn, tmp_path: Path
) -> None:
    standin.put(KEY, "Labels", [["span_id", "label"], *ROWS])
    doc = {
        "source": {"type": "gsheet", "spreadsheet": KEY, "worksheet": "Labels"},
        "target": {"type": "phoenix", "url": "http://127.0.0.1:9"},
        "annotations": [
            {"name": "correctness", "id_column": "span_id", "label_column": "label"},
        ],
    }
    mapping = parse_mapping(doc, tmp_path / "labels.yaml")
    source = GSheetsSource(
        KEY, worksheet="Labels", api_base=standin.url, session=requests.Session()
    )
    target = FormulaishTarget()
    _check_first_run(run(mapping, source=source, target=target))
    assert standin.column(KEY, "Labels", "sync_message")[0] == "'=no such span"

    standin.reset_log()
    again = run(mapping, source=source, target=target)
    assert again.counts["rejected"] == 3 and again.statuses_written == 0
    assert [r.kind for r in standin.log] == ["read"]  # no key re-read, no write
