"""A whole labelling round on a real Phoenix: export with assignment, SMEs label (agreeing,
disagreeing, one missing), an LLM judge annotates through Phoenix's own API (annotator_kind
LLM), sync, then agreement from the sheet and against the judge, tabs read back."""

from __future__ import annotations

import urllib.request
import uuid
from pathlib import Path

import openpyxl
import pytest

from bridge.exporting import export
from bridge.mapping import load_mapping
from bridge.pipeline import run
from bridge.rounds import measure
from tests.builders import tab_links
from tests.servers import PhoenixServer

pytestmark = pytest.mark.phoenix
PROJECT = "tests"
# the query the loader of Phoenix's route /redirects/spans/:span_otel_id runs (the served
# bundle of Phoenix 20.26.1: docs/platform-notes.md, "Phoenix", "Links to records")
SPAN_REDIRECT_QUERY = """query spanRedirectLoaderQuery($spanOtelId: String!) {
  span: getSpanByOtelId(spanId: $spanOtelId) { id trace { traceId id } project { id } }
}"""


def status_of(url: str) -> int:
    with urllib.request.urlopen(url, timeout=30) as r:
        return int(r.status)


def test_a_round_on_phoenix(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]], tmp_path: Path
) -> None:
    name = f"round_{uuid.uuid4().hex[:8]}"
    (tmp_path / "m.yaml").write_text(
        f"""
source:
  type: excel
  path: labels.xlsx
  worksheet: Labels
target:
  type: phoenix
  url: {phoenix.url}
  project: {PROJECT}
annotations:
  - name: {name}
    id_column: span_id
    label_column: label
    annotator_column: annotator
    rules:
      labels: [correct, incorrect]
      require: label
""",
        encoding="utf-8",
    )
    mapping = load_mapping(tmp_path / "m.yaml")
    result = export(mapping, assign=["alice", "bob", "carol"], per_record=2, limit=6)
    assert result.appended == 12
    book = openpyxl.load_workbook(tmp_path / "labels.xlsx")
    ws = book["Labels"]
    header = [c.value for c in ws[1]]
    col = {h: i + 1 for i, h in enumerate(header)}
    spans: list[str] = []
    for r in range(2, ws.max_row + 1):
        sid = ws.cell(r, col["span_id"]).value
        if sid not in spans:
            spans.append(sid)
    assert len(spans) == 6
    # SMEs: carol always says incorrect; alice and bob say correct; bob skips the last span
    for r in range(2, ws.max_row + 1):
        who = ws.cell(r, col["annotator"]).value
        sid = ws.cell(r, col["span_id"]).value
        if who == "bob" and sid == spans[-1]:
            continue
        ws.cell(r, col["label"]).value = "incorrect" if who == "carol" else "correct"
    book.save(tmp_path / "labels.xlsx")
    synced = run(mapping)
    assert synced.exit_code == 0, synced.issues
    # the judge: correct on the first four spans, incorrect on the fifth, nothing on the sixth
    judged = [
        {
            "span_id": sid,
            "name": name,
            "annotator_kind": "LLM",
            "identifier": "judge-gpt",
            "result": {"label": "correct" if i < 4 else "incorrect", "explanation": f"e{i}"},
        }
        for i, sid in enumerate(spans[:5])
    ]
    phoenix.post("/v1/span_annotations?sync=true", {"data": judged})

    round_ = measure(load_mapping(tmp_path / "m.yaml"), judge=name)
    assert round_.exit_code == 0
    human, versus = round_.results
    assert human.records == 6
    assert set(human.annotators) <= {"alice", "bob", "carol"}
    # every human annotation on the platform is HUMAN, and the judge's LLM ones are not
    # counted as humans: the judge compared on the records it judged
    assert versus.without_verdict == 1
    book = openpyxl.load_workbook(tmp_path / "labels.xlsx")
    assert book.sheetnames == ["Labels", "Agreement", "Disagreements"]
    rows = [r for r in book["Disagreements"].iter_rows(values_only=True)]
    assert len(rows) > 1  # carol disagrees with the others somewhere
    # each disputed record's link is the one export wrote into the sheet, and Phoenix serves it
    sheet_links = {
        ws.cell(r, col["span_id"]).value: ws.cell(r, col["link"]).value
        for r in range(2, ws.max_row + 1)
    }
    links = tab_links(tmp_path / "labels.xlsx")
    assert set(links) == {str(r[1]) for r in rows[1:]}
    assert links == {rid: sheet_links[rid] for rid in links}
    assert all(status_of(url) == 200 for url in set(links.values()))
    # without the link column: Phoenix's redirect route, resolved by the real server to the span
    # in this project (the GraphQL query the route's loader runs)
    book = openpyxl.load_workbook(tmp_path / "labels.xlsx")
    book["Labels"].delete_cols(col["link"])
    book.save(tmp_path / "labels.xlsx")
    again = measure(load_mapping(tmp_path / "m.yaml"), judge=name)
    assert again.exit_code == 0 and again.messages == []
    links = tab_links(tmp_path / "labels.xlsx")
    assert set(links) == {d.record_id for r in again.results for d in r.disagreements}
    project_id = phoenix.get(f"/v1/projects/{PROJECT}")["data"]["id"]
    trace_of = {s["span_id"]: s["trace_id"] for s in seeded_spans}
    for rid, url in links.items():
        assert url == f"{phoenix.url}/redirects/spans/{rid}"
        assert status_of(url) == 200
        found = phoenix.post("/graphql", {"query": SPAN_REDIRECT_QUERY,
                                          "variables": {"spanOtelId": rid}})  # fmt: skip
        assert found["data"]["span"]["project"]["id"] == project_id
        assert found["data"]["span"]["trace"]["traceId"] == trace_of[rid]
    unknown = phoenix.post("/graphql", {"query": SPAN_REDIRECT_QUERY,
                                        "variables": {"spanOtelId": "f" * 16}})  # fmt: skip
    assert not (unknown.get("data") or {}).get("span")  # the query tells records apart
    # a judge name with no LLM annotations says so, exit 1
    (tmp_path / "n.yaml").write_text(
        (tmp_path / "m.yaml").read_text().replace(f"name: {name}", "name: never_judged"),
        encoding="utf-8",
    )
    none = measure(load_mapping(tmp_path / "n.yaml"), judge="never_judged", write_tabs=False)
    assert none.exit_code == 1 and "no LLM annotation named 'never_judged'" in none.messages[0]
