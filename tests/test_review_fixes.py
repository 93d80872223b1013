"""Bad input found by reviewing the change: each is a clear error, never a traceback, and no
credential reaches --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bridge.cli import app
from bridge.errors import ConfigError, SourceUnavailable
from bridge.mapping import load_mapping
from bridge.rounds import measure
from bridge.sources.excel.source import save_beside
from bridge.state import RunLock
from tests.builders import make_book, span

runner = CliRunner()

MAPPING = """
source: {{type: excel, path: labels.xlsx, worksheet: Labels}}
target: {{type: phoenix, url: "{url}", project: p{extra}}}
annotations:
  - name: correctness
    id_column: span_id
    label_column: label
    annotator_column: annotator
"""


def test_a_url_with_credentials_never_reaches_the_json(tmp_path: Path) -> None:
    make_book(tmp_path / "labels.xlsx", [[span(1), "correct", None, None, "alice"]])
    (tmp_path / "m.yaml").write_text(
        MAPPING.format(url="http://user:s3cret-pw@127.0.0.1:9", extra=""), encoding="utf-8"
    )
    out = runner.invoke(app, ["validate", str(tmp_path / "m.yaml"), "--json"])
    assert "s3cret-pw" not in out.stdout and "s3cret-pw" not in out.stderr
    body = json.loads(out.stdout)
    assert "***@" in body["target"]


def test_a_missing_folder_for_the_temporary_workbook_is_said_so(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="cannot save"):
        save_beside(tmp_path / "nope" / "x.xlsx", lambda fh: None, "cannot save ({reason})")


def test_a_lock_in_a_state_folder_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot write the lock file"):
        with RunLock(blocker, "run", what="m.yaml"):
            pass


def test_a_report_into_a_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    make_book(
        tmp_path / "labels.xlsx",
        [[span(1), "correct", None, None, "alice"], [span(1), "correct", None, None, "bob"]],
    )
    (tmp_path / "m.yaml").write_text(
        MAPPING.format(url="http://127.0.0.1:9", extra=""), encoding="utf-8"
    )
    out = runner.invoke(
        app,
        ["agreement", str(tmp_path / "m.yaml"), "--no-write", "--report", "nope/r.html"],
    )
    assert out.exit_code == 2 and "cannot write it" in out.stderr
    assert "Traceback" not in out.output


DOCUMENTS = ", annotate: document, document_position_column: position"


def document_round(tmp_path: Path) -> Path:
    # one retriever span, three documents, two SMEs: document 0 agreed, document 1 disputed,
    # document 2 labelled by alice only; one row with no position (no telling which document)
    header = ["span_id", "position", "label", "annotator"]
    rows = [
        [span(1), 0, "relevant", "alice"],
        [span(1), 0, "relevant", "bob"],
        [span(1), 1, "relevant", "alice"],
        [span(1), "1", "irrelevant", "bob"],  # a position typed as text: the same document
        [span(1), 2, "irrelevant", "alice"],
        [span(1), None, "relevant", "bob"],
    ]
    make_book(tmp_path / "labels.xlsx", rows, header=header)
    (tmp_path / "m.yaml").write_text(
        MAPPING.format(url="http://127.0.0.1:9", extra=DOCUMENTS), encoding="utf-8"
    )
    return tmp_path / "m.yaml"


def test_agreement_of_document_annotations_is_per_document(tmp_path: Path) -> None:
    result = measure(load_mapping(document_round(tmp_path)), write_tabs=False)
    assert result.exit_code == 0 and result.messages == []
    assert result.left_out == {"invalid": 1}  # the row without a position
    (figures,) = result.results
    assert figures.records == 3 and figures.records_with_overlap == 2
    assert figures.labels is not None and figures.labels.percent.value == 0.5
    (disputed,) = figures.disagreements
    assert disputed.record_id == f"{span(1)}#1" and disputed.labels == ("relevant", "irrelevant")
    # the link is to the document's span
    assert result.links == {f"{span(1)}#1": f"http://127.0.0.1:9/redirects/spans/{span(1)}"}


def test_agreement_of_document_annotations_with_a_judge_is_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    out = runner.invoke(app, ["agreement", str(document_round(tmp_path)), "--judge", "correctness"])
    assert out.exit_code == 2 and "Traceback" not in out.output
    assert "one per document" in out.stderr and "run agreement without --judge" in out.stderr


def test_the_library_export_takes_what_the_cli_does() -> None:
    import inspect

    from bridge import api

    names = set(inspect.signature(api.export).parameters)
    assert {"assign", "per_record", "queue"} <= names
