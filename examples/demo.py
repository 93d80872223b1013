"""`make demo`: a local Phoenix with real traces, an SME's workbook, and a sync.

1. starts Phoenix on 127.0.0.1 (data in examples/.phoenix-data, git-ignored), or reuses the
   one a previous `make demo` left running;
2. seeds the project `annobridge-demo` with traces through OpenTelemetry, once;
3. writes examples/demo-labels.xlsx, the labels an SME typed for those spans, once;
4. runs `annobridge sync mappings/phoenix-excel.yaml` and shows where to look.

A second `make demo` sends nothing new. `make demo-stop` stops the server.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import openpyxl
from openpyxl.styles import Font

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import PhoenixServer  # noqa: E402 - the repo root is not installed

DATA = ROOT / "examples" / ".phoenix-data"
PID_FILE = DATA / "phoenix.pid"
SPANS_FILE = DATA / "spans.json"
WORKBOOK = ROOT / "examples" / "demo-labels.xlsx"
MAPPING = ROOT / "mappings" / "phoenix-excel.yaml"
PROJECT = "annobridge-demo"
PORT = int(os.environ.get("ANNOBRIDGE_DEMO_PORT", "6006"))
URL = f"http://127.0.0.1:{PORT}"


def phoenix_is_up() -> bool:
    try:
        with urllib.request.urlopen(f"{URL}/healthz", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start_phoenix() -> None:
    if phoenix_is_up():
        print(f"Phoenix is already running at {URL}")
        return
    print(f"starting Phoenix at {URL} (data in {DATA.relative_to(ROOT)}) ...", flush=True)
    server = PhoenixServer(DATA, port=PORT).start(timeout=180)
    assert server.process is not None
    PID_FILE.write_text(str(server.process.pid))
    print(f"Phoenix is up (pid {server.process.pid})")


def stop_phoenix() -> None:
    if not PID_FILE.exists():
        print("no demo Phoenix is running (no pid file)")
        return
    pid = int(PID_FILE.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        print(f"Phoenix (pid {pid}) was not running")
    else:
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        print(f"stopped Phoenix (pid {pid}); its data stays in {DATA.relative_to(ROOT)}")
    PID_FILE.unlink(missing_ok=True)


def seed_once() -> list[dict[str, str]]:
    if SPANS_FILE.exists():
        spans: list[dict[str, str]] = json.loads(SPANS_FILE.read_text())
        try:
            with urllib.request.urlopen(
                f"{URL}/v1/projects/{PROJECT}/spans?span_id={spans[0]['span_id']}", timeout=10
            ) as r:
                if json.load(r)["data"]:
                    print(f"project '{PROJECT}' already has the demo traces")
                    return spans
        except urllib.error.HTTPError:
            pass
    print(f"seeding project '{PROJECT}' with 11 traces through OpenTelemetry ...", flush=True)
    server = PhoenixServer(DATA, port=PORT)
    return server.seed(SPANS_FILE, project=PROJECT, count=11, seed=7)


def write_workbook_once(spans: list[dict[str, str]]) -> None:
    if WORKBOOK.exists():
        print(f"{WORKBOOK.relative_to(ROOT)} exists; keeping the SME's edits")
        return
    # What an SME typed: mostly good labels, a few of the mistakes people make.
    judged = [
        ("correct", 1, "Right answer, concise.", "maria@example.com"),
        ("correct", 1, "", "maria@example.com"),
        ("correct", 0.9, "Correct but adds a year nobody asked for.", "maria@example.com"),
        ("correct", 1, "", "maria@example.com"),
        ("incorrect", 0, "Mars is the red planet, not Jupiter.", "maria@example.com"),
        ("Correct ", 1, "Trailing space and capital: normalised.", "li@example.com"),
        ("👍", 1, "Emoji synonym for correct.", "li@example.com"),
        ("incorrect", 0, "Leonardo da Vinci painted it.", "li@example.com"),
        ("wrong", 0, "Not an allowed label: stays in the sheet as invalid.", "li@example.com"),
        ("correct", 1.5, "Score above the maximum: invalid.", "li@example.com"),
        (None, None, None, None),  # not labelled yet: skipped
    ]
    # A second annotator on the first span: kept as a second annotation, not a conflict.
    second_opinion = ("incorrect", 0, "Second opinion on the first span.", "li@example.com")
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Labels"
    ws.append(["span_id", "question", "answer", "label", "score", "explanation", "annotator"])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for span, (label, score, why, who) in zip(spans, judged, strict=False):
        ws.append([span["span_id"], span["question"], span["answer"], label, score, why, who])
    ws.append([spans[0]["span_id"], spans[0]["question"], spans[0]["answer"], *second_opinion])
    ws.column_dimensions["B"].width = 40
    ws.column_dimensions["C"].width = 40
    ws.column_dimensions["F"].width = 45
    book.save(WORKBOOK)
    print(f"wrote {WORKBOOK.relative_to(ROOT)} ({len(judged) + 1} rows of SME labels)")


def sync() -> int:
    env = {**os.environ, "PHOENIX_BASE_URL": URL}
    cmd = [str(Path(sys.executable).parent / "annobridge"), "sync", str(MAPPING.relative_to(ROOT))]
    print(f"\n$ {' '.join(cmd[1:]).replace(str(ROOT) + '/', '')}  # annobridge", flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


def show_statuses() -> None:
    ws = openpyxl.load_workbook(WORKBOOK)["Labels"]
    header = [c.value for c in ws[1]]
    at = {name: header.index(name) for name in ("span_id", "label", "sync_status", "sync_message")}
    print(f"\nstatus columns in {WORKBOOK.relative_to(ROOT)}:")
    for row in ws.iter_rows(min_row=2, values_only=True):
        label = "" if row[at["label"]] is None else str(row[at["label"]])
        message = row[at["sync_message"]] or ""
        print(f"  {row[at['span_id']]}  {label:<10} {row[at['sync_status']]:<8} {message}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stop", action="store_true", help="stop the demo Phoenix")
    if parser.parse_args().stop:
        stop_phoenix()
        return 0
    DATA.mkdir(parents=True, exist_ok=True)
    start_phoenix()
    spans = seed_once()
    write_workbook_once(spans)
    code = sync()
    show_statuses()
    print(
        f"\nexit code {code}: 1 means some rows need the SME's attention (the invalid ones "
        "above are there on purpose); 0 means everything valid is in Phoenix.\n"
        f"See the annotations: {URL}/projects (project '{PROJECT}', a span's Annotations tab)\n"
        "Run `make demo` again: it sends nothing new. Edit a label in the workbook and run it "
        "again: that one annotation is updated.\n"
        "Stop the server: make demo-stop"
    )
    return exit_code_for(code)


# The sync's codes that mean "the demo worked": 0, and 1 (the invalid rows are on purpose).
# The README says so (tests/test_docs.py reads that sentence and checks it against this).
DEMO_OK = (0, 1)


def exit_code_for(sync_code: int) -> int:
    """`make demo`'s exit code: 0 when the sync exits 0 or 1, the sync's own code otherwise."""
    return 0 if sync_code in DEMO_OK else sync_code


if __name__ == "__main__":
    sys.exit(main())
