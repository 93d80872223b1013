"""Taking back a document annotation on a real Phoenix: two SMEs label documents 0 and 1 of
a retriever span, one clears document 1, and only that SME's annotation on document 1 is
removed (the other SME's on it, both on document 0 and the app's own stay), read back over
GraphQL. The guard sends nothing, dry-run touches nothing, a rerun sends nothing, and a run
killed after Phoenix removed it is finished by the next."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from bridge.mapping import load_mapping
from bridge.pipeline import run
from tests.servers import PhoenixServer
from tests.test_phoenix_documents_live import documents, read_rows, sync, write_rows

pytestmark = pytest.mark.phoenix
ROOT = Path(__file__).resolve().parents[1]
HEADER = ["span_id", "position", "label", "annotator"]


def write_mapping(directory: Path, server: PhoenixServer, name: str, extra: str = "") -> Path:
    path = directory / "mapping.yaml"
    path.write_text(
        f"""
source: {{type: csv, path: labels.csv}}
target:
  type: phoenix
  url: {server.url}
  project: rag
  annotate: document
  document_position_column: position
{extra}
annotations:
  - name: {name}
    id_column: span_id
    label_column: label
    annotator_column: annotator
    rules: {{labels: [relevant, irrelevant]}}
state_dir: state
""",
        encoding="utf-8",
    )
    return path


def setup(tmp_path: Path, server: PhoenixServer, span: str) -> tuple[Path, str]:
    """Alice and bob on documents 0 and 1 of ``span``, synced; the app's own LLM annotation
    of the same name on document 1 (over REST: no identifier)."""
    name = f"doc_retract_{uuid.uuid4().hex[:8]}"
    write_rows(
        tmp_path / "labels.csv",
        [
            [span, 0, "relevant", "alice"],
            [span, 0, "irrelevant", "bob"],
            [span, 1, "relevant", "alice"],
            [span, 1, "irrelevant", "bob"],
        ],
        header=HEADER,
    )
    mapping = write_mapping(tmp_path, server, name)
    code, summary = sync(mapping)
    assert code == 0 and summary["counts"]["synced"] == 4, summary
    body = {
        "data": [
            {
                "span_id": span,
                "document_position": 1,
                "name": name,
                "annotator_kind": "LLM",
                "result": {"label": "relevant", "score": 0.9},
            }
        ]
    }
    request = urllib.request.Request(
        f"{server.url}/v1/document_annotations?sync=true",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=30).close()
    return mapping, name


def clear(book: Path, annotator: str, position: str) -> None:
    rows = read_rows(book)
    for r in rows:
        if r["annotator"] == annotator and r["position"] == position:
            r["label"] = ""
    write_rows(book, [[r[h] for h in rows[0]] for r in rows], header=list(rows[0]))


def test_one_sme_clears_document_1_and_only_that_annotation_is_removed(
    phoenix: PhoenixServer, retriever_spans: list[dict[str, Any]], tmp_path: Path
) -> None:
    span = retriever_spans[4]["retriever_span_id"]
    mapping, name = setup(tmp_path, phoenix, span)
    before = documents(phoenix, span, name)
    assert set(before) == {
        (0, "annobridge:alice"),
        (0, "annobridge:bob"),
        (1, "annobridge:alice"),
        (1, "annobridge:bob"),
        (1, ""),  # the app's
    }
    book = tmp_path / "labels.csv"
    clear(book, "bob", "1")  # bob takes back his label on document 1

    planned = run(load_mapping(mapping), dry_run=True).planned
    assert planned == [
        {
            "retract": {
                "name": name,
                "kind": "span",
                "id": span,
                "identifier": "annobridge:bob",
                "annotator": "bob",
                "position": "1",
            }
        }
    ]
    assert documents(phoenix, span, name) == before  # the dry run removed nothing

    write_mapping(tmp_path, phoenix, name, "max_retractions: 0")
    code, summary = sync(mapping)
    assert code == 2 and "more than max_retractions (0)" in summary["error"]["message"]
    assert documents(phoenix, span, name) == before  # the guard sent nothing
    write_mapping(tmp_path, phoenix, name)

    code, summary = sync(mapping)
    assert code == 0, summary
    assert summary["counts"]["retracted"] == 1 and summary["counts"]["unchanged"] == 3
    after = documents(phoenix, span, name)
    assert after == {k: v for k, v in before.items() if k != (1, "annobridge:bob")}
    rows = read_rows(book)
    assert [r["sync_status"] for r in rows] == ["synced", "synced", "synced", "retracted"]
    assert rows[3]["sync_message"] == f"cleared in the sheet: {name} taken back on the platform"

    code, summary = sync(mapping)  # a rerun: nothing left to do
    assert code == 0 and summary["counts"]["unchanged"] == 4
    assert summary["annotations_sent"] == 0 and summary["statuses_written"] == 0
    assert documents(phoenix, span, name) == after


def test_killed_after_phoenix_removed_it_the_next_run_finishes(
    phoenix: PhoenixServer, retriever_spans: list[dict[str, Any]], tmp_path: Path
) -> None:
    span = retriever_spans[5]["retriever_span_id"]
    mapping, name = setup(tmp_path, phoenix, span)
    before = documents(phoenix, span, name)
    book = tmp_path / "labels.csv"
    clear(book, "alice", "1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOENIX_")}
    done = subprocess.run(
        [sys.executable, "-m", "tests.crash_driver", "after-send", "1", "sync", str(mapping)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    expected = {k: v for k, v in before.items() if k != (1, "annobridge:alice")}
    assert documents(phoenix, span, name) == expected  # removed; the sheet does not say so
    assert [r["sync_status"] for r in read_rows(book)] == ["synced"] * 4

    code, summary = sync(mapping)
    assert code == 0 and summary["counts"]["retracted"] == 1, summary
    assert documents(phoenix, span, name) == expected
    rows = read_rows(book)
    assert [r["sync_status"] for r in rows] == ["synced", "synced", "retracted", "synced"]
    assert "holds nothing of this row any more" in rows[2]["sync_message"]
