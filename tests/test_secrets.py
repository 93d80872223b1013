"""Planted fake tokens never show up in output, logs, --json, the sheet or the cassettes."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from bridge.cli import app

runner = CliRunner()
CASSETTES = Path(__file__).parent / "cassettes"
PLANTED = {
    "PHOENIX_API_KEY": "planted-phoenix-key-5a1f0c",
    "ARIZE_API_KEY": "planted-arize-key-77c2d1",
    "LOG10_TOKEN": "planted-log10-token-0e9b3a",
    "MLFLOW_TRACKING_TOKEN": "planted-mlflow-token-4d8e2f",
    "MLFLOW_TRACKING_PASSWORD": "planted-mlflow-password-19ab",
}
SPAN = "67f6740bbe1ddc3f"


class LeakyPhoenix:
    """A Phoenix stand-in whose error bodies echo the request's Authorization header."""

    def __init__(self, refuse_auth: bool) -> None:
        refuse = refuse_auth

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                auth = self.headers.get("Authorization", "")
                if refuse:
                    return self._send(401, {"detail": f"Invalid token: {auth}"})
                return self._send(200, {"data": [], "next_cursor": None})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                auth = self.headers.get("Authorization", "")
                self._send(
                    422, {"detail": [{"loc": ["body", "x"], "msg": f"bad, you sent {auth}"}]}
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
    return PLANTED


@pytest.fixture(params=[True, False], ids=["auth-refused", "row-rejected"])
def leaky(request: pytest.FixtureRequest) -> Iterator[LeakyPhoenix]:
    server = LeakyPhoenix(refuse_auth=request.param)
    yield server
    server.close()


def job(tmp_path: Path, url: str) -> Path:
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Labels"
    ws.append(["span_id", "label"])
    ws.append([SPAN, "correct"])
    book.save(tmp_path / "labels.xlsx")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        f"""
source: {{type: excel, path: labels.xlsx}}
target: {{type: phoenix, url: "{url}"}}
annotations:
  - {{name: correctness, id_column: span_id, label_column: label, annotator: sme}}
"""
    )
    return mapping


def test_tokens_echoed_by_a_server_never_reach_output_logs_or_the_sheet(
    planted: dict[str, str], leaky: LeakyPhoenix, tmp_path: Path
) -> None:
    mapping = job(tmp_path, leaky.url)
    outputs = []
    for args in (["--json"], ["--log-format", "json"], []):
        result = runner.invoke(app, ["sync", str(mapping), *args])
        assert result.exit_code in (1, 3)
        outputs.append(result.stdout + result.stderr)
    cells = [
        str(v)
        for row in openpyxl.load_workbook(tmp_path / "labels.xlsx").active.iter_rows(
            values_only=True
        )
        for v in row
    ]
    everything = "\n".join(outputs + cells)
    assert "***" in everything  # the server did echo something, and it was blanked
    for value in planted.values():
        assert value not in everything


def test_no_cassette_holds_a_credential() -> None:
    files = [p for p in CASSETTES.rglob("*") if p.is_file()]
    assert files, "no cassettes found"
    header = re.compile(
        r"^\s*['\"]?(authorization|x-api-key|x-log10-token|api_key)['\"]?\s*:", re.I | re.M
    )
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        assert not header.search(text), f"{path} records a credential header"
        for value in PLANTED.values():
            assert value not in text, path
