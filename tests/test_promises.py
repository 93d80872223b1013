"""README promises that had no test, each checked so that it fails when the promise breaks.

No server: the CLI through CliRunner (or a subprocess for signals and the terminal) on local
CSV files, with an in-memory target, the log10 stand-in, the Sheets stand-in, or an
in-process fake of Phoenix's REST answers.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml
from typer.testing import CliRunner

import bridge.pipeline as pipeline
from bridge.cli import app
from bridge.errors import TargetUnreachable
from bridge.mapping import load_mapping, parse_mapping
from bridge.pipeline import run
from bridge.records import Annotation, Outcome, Status
from bridge.registry import open_target

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
SPANS = [f"{i:016x}" for i in range(1, 9)]


# -- an in-memory platform -----------------------------------------------------------------


class MemoryTarget:
    """Upserts by (id, name, identifier); rejects ids in ``reject``; ``down`` fails check()."""

    name = "memory"
    kind = "span"

    def __init__(self, reject: set[str] | None = None, down: bool = False) -> None:
        self.reject = reject or set()
        self.down = down
        self.sent: list[list[str]] = []

    def fingerprint(self) -> str:
        return "memory|test"

    def payload(self, a: Annotation) -> dict[str, Any]:
        return {"span_id": a.target_id, "label": a.label}

    def check(self) -> None:
        if self.down:
            raise TargetUnreachable("cannot reach Memory at http://127.0.0.1:9 (refused)")

    def send(self, annotations: Sequence[Annotation], progress: Any = None) -> list[Outcome]:
        self.sent.append([a.target_id for a in annotations])
        if progress:
            progress(len(annotations))
        return [
            Outcome.rejected(f"no span '{a.target_id}'")
            if a.target_id in self.reject
            else Outcome.ok(f"id-{a.target_id}")
            for a in annotations
        ]

    def close(self) -> None:
        pass


def write_csv(path: Path, spans: Sequence[str], label: str = "correct") -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["span_id", "label", "annotator"])
        for s in spans:
            w.writerow([s, label, "alice"])
    return path


def write_mapping(directory: Path, name: str = "m.yaml", sheet: str = "labels.csv") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(
        f"""
source: {{type: csv, path: {sheet}}}
target: {{type: phoenix, url: "http://127.0.0.1:9"}}
annotations:
  - name: correctness
    id_column: span_id
    label_column: label
    annotator_column: annotator
    rules: {{labels: [correct, incorrect]}}
"""
    )
    return path


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return [{k: v or "" for k, v in r.items()} for r in csv.DictReader(f, restval="")]


@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch) -> dict[str, MemoryTarget]:
    """Targets by mapping file name; the CLI's runs open these instead of Phoenix."""
    targets: dict[str, MemoryTarget] = {}

    def opened(mapping: Any, **kw: Any) -> MemoryTarget:
        name = Path(mapping.path).name
        return targets.setdefault(name, MemoryTarget())

    monkeypatch.setattr(pipeline, "open_target", opened)
    return targets


def tree_digest(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` with the hash of its bytes."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# -- several mappings: the exit code is the worst --------------------------------------------

# What each kind of mapping exits with on its own.
KINDS = {"ok": 0, "rows": 1, "broken": 2, "down": 3}


def make_job(directory: Path, index: int, kind: str, memory: dict[str, MemoryTarget]) -> Path:
    name = f"{index}-{kind}.yaml"
    sheet = f"labels-{index}.csv"
    directory.mkdir(parents=True, exist_ok=True)
    write_csv(directory / sheet, SPANS[:2])
    path = write_mapping(directory, name, sheet)
    if kind == "broken":
        path.write_text(path.read_text().replace("label_column", "lable_column"))
    memory[name] = MemoryTarget(reject={SPANS[1]} if kind == "rows" else None, down=kind == "down")
    return path


@pytest.mark.parametrize(
    "kinds",
    [
        ["down", "ok", "ok"],  # the failing mapping first
        ["ok", "ok", "down"],  # and last
        ["rows", "ok"],
        ["ok", "rows"],
        ["broken", "ok", "rows"],
        ["ok", "rows", "broken"],
        ["down", "rows", "broken", "ok"],
        ["ok", "ok"],
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_several_mappings_exit_with_the_worst_code_and_all_of_them_run(
    tmp_path: Path, memory: dict[str, MemoryTarget], kinds: list[str], as_json: bool
) -> None:
    paths = [make_job(tmp_path, i, k, memory) for i, k in enumerate(kinds)]
    result = runner.invoke(app, ["sync", *map(str, paths), *(["--json"] if as_json else [])])
    worst = max(KINDS[k] for k in kinds)
    assert result.exit_code == worst, result.output
    for path, kind in zip(paths, kinds, strict=True):  # one that fails stops no other
        sent = memory[path.name].sent
        assert sent == ([] if kind in ("broken", "down") else [SPANS[:2]]), path.name
    if as_json:
        body = json.loads(result.stdout)
        assert body["exit_code"] == worst
        assert [m["exit_code"] for m in body["mappings"]] == [KINDS[k] for k in kinds]
    else:
        assert "Traceback" not in result.output


def test_a_folder_of_mappings_exits_with_the_worst_code(
    tmp_path: Path, memory: dict[str, MemoryTarget]
) -> None:
    for i, kind in enumerate(["rows", "ok", "ok"]):  # sorted by name: the failing one first
        make_job(tmp_path / "maps", i, kind, memory)
    result = runner.invoke(app, ["sync", str(tmp_path / "maps")])
    assert result.exit_code == 1, result.output


# -- --limit ---------------------------------------------------------------------------------


def test_limit_sends_at_most_n_rows_and_leaves_the_rest_pending(
    tmp_path: Path, memory: dict[str, MemoryTarget]
) -> None:
    sheet = write_csv(tmp_path / "labels.csv", SPANS[:5])
    mapping = write_mapping(tmp_path)
    result = runner.invoke(app, ["sync", str(mapping), "--limit", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert memory["m.yaml"].sent == [SPANS[:2]]
    body = json.loads(result.stdout)
    assert body["counts"]["synced"] == 2 and body["counts"]["pending"] == 3
    assert [r["sync_status"] for r in csv_rows(sheet)] == ["synced"] * 2 + [""] * 3
    again = runner.invoke(app, ["sync", str(mapping), "--limit", "2"])
    assert again.exit_code == 0
    assert memory["m.yaml"].sent == [SPANS[:2], SPANS[2:4]]  # the next two, not the first again


def test_limit_applies_to_every_mapping_of_a_multi_run(
    tmp_path: Path, memory: dict[str, MemoryTarget]
) -> None:
    paths = []
    for i in range(2):
        write_csv(tmp_path / f"labels-{i}.csv", SPANS[:4])
        paths.append(write_mapping(tmp_path, f"{i}.yaml", f"labels-{i}.csv"))
    result = runner.invoke(app, ["sync", *map(str, paths), "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert [memory[p.name].sent for p in paths] == [[SPANS[:1]], [SPANS[:1]]]


# -- --dry-run touches nothing ---------------------------------------------------------------


def test_dry_run_leaves_the_csv_and_the_state_folder_byte_for_byte(
    tmp_path: Path, memory: dict[str, MemoryTarget], isolated_home: Path
) -> None:
    sheet = write_csv(tmp_path / "labels.csv", SPANS[:3])
    mapping = write_mapping(tmp_path)
    state = Path(os.environ["ANNOBRIDGE_STATE_DIR"])
    # a state folder that already holds something (an earlier run's journal and lock)
    assert runner.invoke(app, ["sync", str(mapping), "--limit", "1"]).exit_code == 0
    write_csv(sheet, SPANS[:3], label="incorrect")  # edited since: all three would be sent
    before_sheet, before_state, before_dir = (
        sheet.read_bytes(),
        tree_digest(state),
        tree_digest(tmp_path),
    )
    sent_before = list(memory["m.yaml"].sent)
    result = runner.invoke(app, ["sync", str(mapping), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would send 3 annotations; nothing sent" in result.stdout
    assert memory["m.yaml"].sent == sent_before
    assert sheet.read_bytes() == before_sheet
    assert tree_digest(state) == before_state
    assert tree_digest(tmp_path) == before_dir  # no status file, lock or temp file anywhere


def test_dry_run_leaves_a_google_sheet_untouched(tmp_path: Path) -> None:
    from bridge.sources.gsheets.source import GSheetsSource
    from tests.sheets_standin import SheetsStandIn

    key = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
    with SheetsStandIn() as standin:
        standin.add_spreadsheet(key, "SME labels", sheets=[("Labels", 0)])
        standin.put(
            key,
            "Labels",
            [
                ["span_id", "label", "annotator", "sync_status"],
                [SPANS[0], "correct", "alice", ""],
                [SPANS[1], "incorrect", "bob", "synced"],
            ],
        )
        before = json.dumps(standin.grid(key, "Labels"))
        mapping = parse_mapping(
            yaml.safe_load(
                f"""
source: {{type: gsheet, spreadsheet: {key}, worksheet: Labels}}
target: {{type: phoenix, url: "http://127.0.0.1:9"}}
annotations:
  - {{name: correctness, id_column: span_id, label_column: label, annotator_column: annotator}}
"""
            ),
            tmp_path / "m.yaml",
        )
        src = GSheetsSource(key, "Labels", api_base=standin.url, session=requests.Session())
        target = MemoryTarget()
        result = run(mapping, dry_run=True, source=src, target=target)
        assert len(result.planned) == 2
        assert target.sent == []
        assert json.dumps(standin.grid(key, "Labels")) == before
        assert standin.count() >= 1  # it was read ...
        assert [r.kind for r in standin.log if r.kind not in ("read", "metadata", "token")] == []
    assert not any(Path(os.environ["ANNOBRIDGE_STATE_DIR"]).iterdir())


# -- --json: the exact keys ------------------------------------------------------------------

SYNC_KEYS = {
    "mapping",
    "source",
    "target",
    "platform",
    "url",
    "project",
    "queue_completed",
    "queue_warning",
    "dry_run",
    "rows",
    "counts",
    "annotations_sent",
    "statuses_written",
    "vanished_rows",
    "recovered",
    "interrupted",
    "issues",
    "exit_code",
    "seconds",
}
COUNT_KEYS = {
    "synced",
    "unchanged",
    "invalid",
    "rejected",
    "failed",
    "skipped",
    "retracted",
    "pending",
}


def test_json_has_exactly_the_documented_keys(
    tmp_path: Path, memory: dict[str, MemoryTarget]
) -> None:
    write_csv(tmp_path / "labels.csv", SPANS[:2])
    mapping = write_mapping(tmp_path)
    memory["m.yaml"] = MemoryTarget(reject={SPANS[1]})
    result = runner.invoke(app, ["sync", str(mapping), "--json"])
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert set(body) == SYNC_KEYS
    assert set(body["counts"]) == COUNT_KEYS
    assert body["counts"] == {**dict.fromkeys(COUNT_KEYS, 0), "synced": 1, "rejected": 1}
    assert body["issues"] == [
        {"sheet_row": 3, "status": "rejected", "message": f"no span '{SPANS[1]}'"}
    ]
    assert (body["annotations_sent"], body["statuses_written"], body["exit_code"]) == (2, 2, 1)
    assert body["vanished_rows"] == [] and body["interrupted"] is False

    dry = json.loads(runner.invoke(app, ["sync", str(mapping), "--json", "--dry-run"]).stdout)
    assert set(dry) == SYNC_KEYS | {"planned"}
    assert dry["planned"] == [{"span_id": SPANS[1], "label": "correct"}]

    valid = json.loads(runner.invoke(app, ["validate", str(mapping), "--json"]).stdout)
    assert set(valid) == SYNC_KEYS | {"planned"} and valid["planned"] == []

    error = runner.invoke(app, ["sync", str(tmp_path / "nope.yaml"), "--json"])
    assert error.exit_code == 2
    body = json.loads(error.stdout)
    assert set(body) == {"error", "exit_code"}
    assert set(body["error"]) == {"type", "code", "message"}

    several = runner.invoke(app, ["sync", str(mapping), str(tmp_path / "nope.yaml"), "--json"])
    body = json.loads(several.stdout)
    assert set(body) == {"mappings", "exit_code"}
    assert set(body["mappings"][0]) == SYNC_KEYS
    assert set(body["mappings"][1]) == {"mapping", "error", "exit_code"}


# -- errors: "Type: message" on stderr, no traceback -----------------------------------------


@pytest.mark.parametrize(
    ("setup", "line", "code"),
    [
        ("no_mapping", "MappingError: {dir}/nope.yaml: no such file; create one with", 2),
        (
            "unknown_key",
            "MappingError: {dir}/m.yaml, key 'annotations[0].lable_column': unknown key",
            2,
        ),
        ("down", "TargetUnreachable: cannot reach Memory at http://127.0.0.1:9 (refused)", 3),
    ],
)
def test_errors_are_one_type_colon_message_line_on_stderr(
    tmp_path: Path, memory: dict[str, MemoryTarget], setup: str, line: str, code: int
) -> None:
    write_csv(tmp_path / "labels.csv", SPANS[:1])
    mapping = write_mapping(tmp_path)
    if setup == "no_mapping":
        mapping = tmp_path / "nope.yaml"
    elif setup == "unknown_key":
        mapping.write_text(mapping.read_text().replace("label_column", "lable_column"))
    elif setup == "down":
        memory["m.yaml"] = MemoryTarget(down=True)
    result = runner.invoke(app, ["sync", str(mapping)])
    assert result.exit_code == code
    assert result.stdout == ""
    [only] = result.stderr.splitlines()
    assert only.startswith(line.format(dir=tmp_path)), only
    assert "Traceback" not in result.output


# -- rules pull --check ----------------------------------------------------------------------


def test_rules_pull_check_exits_0_when_equal_and_1_when_different_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.log10_standin import Log10StandIn

    schema = {
        "type": "object",
        "properties": {"feedback": {"type": "string", "enum": ["good", "bad"]}},
        "required": ["feedback"],
    }
    monkeypatch.setenv("LOG10_TOKEN", "log10-token-abc")
    monkeypatch.setenv("LOG10_ORG_ID", "org-1")
    with Log10StandIn(token="log10-token-abc", org_id="org-1") as server:
        task_id = server.add_task("fb", schema, ["tag"], "Say good or bad")
        path = tmp_path / "m.yaml"

        def mapping_with(labels: str) -> bytes:
            path.write_text(
                "source:\n  type: csv\n  path: l.csv\n"
                f"target:\n  type: log10\n  url: {server.url}\n  task_id: {task_id}\n"
                "  json_values: {feedback: label}\n"
                "annotations:\n  - name: feedback\n    id_column: tags\n    label_column: label\n"
                f"    rules:\n      labels: {labels}  # ours\n"
            )
            return path.read_bytes()

        same = mapping_with("[good, bad]")
        result = runner.invoke(app, ["rules", "pull", str(path), "--check"])
        assert result.exit_code == 0, result.output
        assert "match the platform's" in result.stdout
        assert path.read_bytes() == same
        as_json = runner.invoke(app, ["rules", "pull", str(path), "--check", "--json"])
        assert as_json.exit_code == 0 and json.loads(as_json.stdout)["exit_code"] == 0

        differs = mapping_with("[good, okay, bad]")
        result = runner.invoke(app, ["rules", "pull", str(path), "--check"])
        assert result.exit_code == 1, result.output
        assert "-      labels: [good, okay, bad]" in result.stdout
        assert path.read_bytes() == differs  # --check writes nothing
        as_json = runner.invoke(app, ["rules", "pull", str(path), "--check", "--json"])
        assert as_json.exit_code == 1
        assert json.loads(as_json.stdout)["written"] is False
        # without --check the same difference is written, and exits 0
        assert runner.invoke(app, ["rules", "pull", str(path)]).exit_code == 0
        assert path.read_bytes() != differs
        assert runner.invoke(app, ["rules", "pull", str(path), "--check"]).exit_code == 0


# -- export --all-spans ----------------------------------------------------------------------


def test_export_lists_root_spans_unless_all_spans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bridge.exporting as exporting

    seen: list[bool] = []

    def spy(mapping: Any, **kw: Any) -> Any:
        seen.append(kw["roots_only"])
        raise TargetUnreachable("stop here")

    monkeypatch.setattr(exporting, "export", spy)  # the CLI imports it when it runs
    mapping = write_mapping(tmp_path)
    runner.invoke(app, ["export", str(mapping)])
    runner.invoke(app, ["export", str(mapping), "--all-spans"])
    assert seen == [True, False]


def test_phoenix_export_asks_for_root_spans_only_unless_all_spans(tmp_path: Path) -> None:
    from bridge.records import ExportQuery

    for roots_only in (True, False):
        fake = FakePhoenix(spans=[])
        target = phoenix_target(tmp_path, fake)
        query = ExportQuery(
            names=("correctness",), annotator_kinds=("HUMAN",), roots_only=roots_only
        )
        list(target.export_records(query))
        listed = [q for m, p, q in fake.calls if m == "GET" and p.endswith("/spans")]
        assert listed, fake.calls
        for q in listed:
            assert (q.get("parent_id") == ["null"]) is roots_only, q


# -- Phoenix: confirmation reads the content back, and gives up at confirm_timeout ------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _answer(request: requests.PreparedRequest, status: int, body: Any) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers["Content-Type"] = "application/json"
    response.url = str(request.url)
    response.request = request
    return response


class FakePhoenix(requests.adapters.BaseAdapter):
    """Phoenix's REST answers for spans and span annotations, in process (no socket).

    :param queued: what a queued (sync=false) row is stored as: "as sent", "never" (the
        queue drops it), or "altered" (stored with another label, as a concurrent writer or a
        buggy server would).
    """

    def __init__(self, spans: Sequence[str], queued: str = "as sent") -> None:
        super().__init__()
        self.spans = set(spans)
        self.queued = queued
        self.store: dict[tuple[str, str, str], tuple[str, dict[str, Any]]] = {}
        self.calls: list[tuple[str, str, dict[str, list[str]]]] = []

    def send(self, request: requests.PreparedRequest, **kw: Any) -> requests.Response:
        parts = urlsplit(str(request.url))
        q = parse_qs(parts.query, keep_blank_values=True)
        method, path = str(request.method), parts.path
        self.calls.append((method, path, q))
        if method == "GET" and path.endswith("/spans"):
            wanted = q.get("span_id", [])
            data = [
                {"context": {"span_id": s, "trace_id": "0" * 32}} for s in wanted if s in self.spans
            ]
            return _answer(request, 200, {"data": data, "next_cursor": None})
        if method == "POST" and path == "/v1/span_annotations":
            body = json.loads(request.body or b"{}")
            synchronous = q.get("sync") == ["true"]
            ids = []
            for d in body["data"]:
                key = (d["span_id"], d["name"], d.get("identifier") or "")
                remote = f"id-{d['span_id']}"
                ids.append({"id": remote})
                result = dict(d["result"])
                if not synchronous:
                    if self.queued == "never":
                        continue
                    if self.queued == "altered":
                        result["label"] = f"not-{result.get('label')}"
                self.store[key] = (remote, result)
            return _answer(request, 200, {"data": ids if synchronous else []})
        if method == "GET" and path.endswith("/span_annotations"):
            ids, names = set(q.get("span_ids", [])), set(q.get("include_annotation_names", []))
            data = [
                {"id": remote, "span_id": s, "name": n, "identifier": i, "result": r}
                for (s, n, i), (remote, r) in self.store.items()
                if s in ids and n in names
            ]
            return _answer(request, 200, {"data": data, "next_cursor": None})
        return _answer(request, 200, {"data": []})

    def close(self) -> None:
        pass

    def posts(self, sync: str) -> int:
        return sum(1 for m, p, q in self.calls if m == "POST" and q.get("sync") == [sync])


def phoenix_target(
    tmp_path: Path, fake: FakePhoenix, clock: Clock | None = None, **config: Any
) -> Any:
    target = {"type": "phoenix", "url": "http://127.0.0.1:9", "project": "p", **config}
    mapping = parse_mapping(
        {
            "source": {"type": "csv", "path": "l.csv"},
            "target": target,
            "annotations": [
                {"name": "correctness", "id_column": "span_id", "label_column": "label"}
            ],
        },
        tmp_path / "m.yaml",
    )
    session = requests.Session()
    session.mount("http://", fake)
    clock = clock or Clock()
    return open_target(mapping, session=session, env={}, sleep=clock.sleep, clock=clock)


def annotation(i: int, span: str, label: str = "correct") -> Annotation:
    return Annotation(
        row_index=i,
        name="correctness",
        kind="span",
        target_id=span,
        label=label,
        score=None,
        explanation="because",
        annotator="alice",
        annotator_kind="HUMAN",
        identifier="annobridge:alice",
        metadata={"row": i + 2},
    )


def test_phoenix_confirms_queued_rows_it_reads_back_as_sent(tmp_path: Path) -> None:
    fake = FakePhoenix(SPANS[:3])
    outcomes = phoenix_target(tmp_path, fake).send(
        [annotation(i, s) for i, s in enumerate(SPANS[:3])]
    )
    assert [o.status for o in outcomes] == [Status.SYNCED] * 3
    assert (fake.posts("false"), fake.posts("true")) == (1, 0)  # queued, read back, done


def test_phoenix_confirms_only_what_it_stored_as_sent(tmp_path: Path) -> None:
    # The queued rows are stored with another label: not confirmed, sent again synchronously.
    fake = FakePhoenix(SPANS[:3], queued="altered")
    clock = Clock()
    batch = [annotation(i, s) for i, s in enumerate(SPANS[:3])]
    outcomes = phoenix_target(tmp_path, fake, clock, confirm_timeout=5).send(batch)
    assert [o.status for o in outcomes] == [Status.SYNCED] * 3
    assert (fake.posts("false"), fake.posts("true")) == (1, 1)
    assert {r["label"] for _, r in fake.store.values()} == {"correct"}  # what was sent, in the end


def test_phoenix_gives_up_waiting_at_confirm_timeout_and_sends_synchronously(
    tmp_path: Path,
) -> None:
    fake = FakePhoenix(SPANS[:2], queued="never")
    clock = Clock()
    batch = [annotation(i, s) for i, s in enumerate(SPANS[:2])]
    outcomes = phoenix_target(tmp_path, fake, clock, confirm_timeout=3).send(batch)
    assert [o.status for o in outcomes] == [Status.SYNCED] * 2
    assert (fake.posts("false"), fake.posts("true")) == (1, 1)
    reads = [c for c in fake.calls if c[0] == "GET" and c[1].endswith("/span_annotations")]
    assert len(reads) >= 2  # it did look more than once before giving up
    assert 3 <= clock.now < 3 + 2.5  # waited until confirm_timeout (fake clock), then no longer


# -- signals, and the progress bar on a terminal ---------------------------------------------


def gated(
    tmp_path: Path, *args: str, stdout: Any = subprocess.PIPE, stderr: Any = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.gated_sync", str(tmp_path), *args],
        cwd=ROOT,
        env=env,
        stdout=stdout,
        stderr=stderr,
    )


def wait_for(path: Path, process: subprocess.Popen[bytes]) -> None:
    """Until ``path`` exists (the child is inside a send); fails if the child exits first."""
    for _ in range(6000):
        if path.exists():
            return
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the sync exited {process.returncode} first: {err.decode()}")
        time.sleep(0.01)
    process.kill()
    pytest.fail(f"{path.name} never appeared")


def sent_ids(tmp_path: Path) -> list[list[str]]:
    return [
        json.loads((tmp_path / f"sending-{i}").read_text())
        for i in range(len(list(tmp_path.glob("sending-*"))))
    ]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_stops_after_the_batch_in_flight_exits_130_and_resumes(
    tmp_path: Path, signum: int
) -> None:
    sheet = write_csv(tmp_path / "labels.csv", SPANS[:6])  # three chunks of two
    mapping = write_mapping(tmp_path)
    child = gated(tmp_path, "sync", str(mapping))
    wait_for(tmp_path / "sending-0", child)
    child.send_signal(signum)
    (tmp_path / "go").touch()  # the batch in flight is answered after the signal
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err.decode()
    assert "stopping after the batch in flight" in err.decode()
    assert "Traceback" not in err.decode()
    assert sent_ids(tmp_path) == [SPANS[:2]]  # nothing sent after the signal
    assert [r["sync_status"] for r in csv_rows(sheet)] == ["synced"] * 2 + [""] * 4
    # the next run sends only the rest
    again = gated(tmp_path, "sync", str(mapping))
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err.decode()
    assert sent_ids(tmp_path) == [SPANS[:2], SPANS[2:4], SPANS[4:6]]
    assert [r["sync_status"] for r in csv_rows(sheet)] == ["synced"] * 6


def test_a_second_ctrl_c_aborts_without_waiting_for_the_batch(tmp_path: Path) -> None:
    sheet = write_csv(tmp_path / "labels.csv", SPANS[:4])
    before = sheet.read_bytes()
    mapping = write_mapping(tmp_path)
    child = gated(tmp_path, "sync", str(mapping))
    wait_for(tmp_path / "sending-0", child)
    child.send_signal(signal.SIGINT)
    for _ in range(500):  # the first is acknowledged, then the second one aborts
        if child.poll() is not None:
            break
        child.send_signal(signal.SIGINT)
        time.sleep(0.05)
    if child.poll() is None:
        child.kill()
        child.communicate()
        pytest.fail("a second Ctrl-C did not abort: the sync kept waiting for its batch")
    _, err = child.communicate(timeout=120)
    assert not (tmp_path / "go").exists()  # it never waited for the batch in flight
    # killed by SIGINT (the shell shows 130), or exit 130
    assert child.returncode in (130, -signal.SIGINT), err.decode()
    assert "Traceback" not in err.decode()
    assert sheet.read_bytes() == before  # nothing confirmed, nothing written


def on_a_terminal(tmp_path: Path, *args: str) -> tuple[int, str]:
    """Run the gated CLI with stdout on a pseudo-terminal; its exit code and what it showed."""
    (tmp_path / "go").touch()
    master, slave = pty.openpty()
    child = gated(tmp_path, *args, stdout=slave, stderr=subprocess.STDOUT)
    os.close(slave)
    shown = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        elif child.poll() is not None:
            break
    child.wait(timeout=120)
    os.close(master)
    return child.returncode, shown.decode(errors="replace")


def test_the_progress_bar_shows_on_a_terminal_and_quiet_shows_nothing(tmp_path: Path) -> None:
    write_csv(tmp_path / "labels.csv", SPANS[:6])
    mapping = write_mapping(tmp_path)
    code, shown = on_a_terminal(tmp_path, "sync", str(mapping))
    assert code == 0
    assert "sending" in shown and "6/6" in shown  # the bar, with done/total
    assert "synced" in shown  # then the summary

    write_csv(tmp_path / "labels.csv", SPANS[:6], label="incorrect")
    code, shown = on_a_terminal(tmp_path, "sync", str(mapping), "--quiet")
    assert code == 0
    assert shown.strip() == ""  # no bar, no summary

    write_csv(tmp_path / "labels.csv", SPANS[:6])
    code, shown = on_a_terminal(tmp_path, "sync", str(mapping), "--json")
    assert code == 0
    assert "sending" not in shown
    assert json.loads(shown)["counts"]["synced"] == 6


def test_no_progress_bar_when_stdout_is_not_a_terminal(
    tmp_path: Path, memory: dict[str, MemoryTarget]
) -> None:
    write_csv(tmp_path / "labels.csv", SPANS[:3])
    result = runner.invoke(app, ["sync", str(write_mapping(tmp_path))])
    assert result.exit_code == 0
    assert "sending" not in result.output
    assert result.stdout.startswith("synced ")


# -- found by `make mutate`: survivors that mattered ------------------------------------------


def test_a_status_that_did_not_change_is_not_written_again(
    tmp_path: Path, memory: dict[str, MemoryTarget]
) -> None:
    sheet = tmp_path / "labels.csv"
    with sheet.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["span_id", "label", "annotator"])
        w.writerows([[SPANS[0], "correct", "alice"], [SPANS[1], "wrong", "alice"]])
    mapping = write_mapping(tmp_path)
    first = json.loads(runner.invoke(app, ["sync", str(mapping), "--json"]).stdout)
    assert first["statuses_written"] == 2
    rows = csv_rows(sheet)
    assert [r["sync_status"] for r in rows] == ["synced", "invalid"]
    assert rows[0]["sync_message"] == ""  # a synced row says nothing
    assert rows[1]["sync_message"] == "label 'wrong' is not one of: correct, incorrect"
    before = sheet.read_bytes()
    again = json.loads(runner.invoke(app, ["sync", str(mapping), "--json"]).stdout)
    # the invalid row is still invalid for the same reason: nothing to write, no new time
    assert again["statuses_written"] == 0
    assert sheet.read_bytes() == before


def test_a_new_reason_is_written_even_when_the_status_stays(
    tmp_path: Path, memory: dict[str, MemoryTarget]
) -> None:
    sheet = write_csv(tmp_path / "labels.csv", SPANS[:1], label="wrong")
    mapping = write_mapping(tmp_path)
    runner.invoke(app, ["sync", str(mapping)])
    rows = csv_rows(sheet)
    assert rows[0]["sync_status"] == "invalid"
    rows[0]["label"] = "bogus"  # only the label changes; the status columns stay
    with sheet.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    result = json.loads(runner.invoke(app, ["sync", str(mapping), "--json"]).stdout)
    assert result["statuses_written"] == 1
    assert csv_rows(sheet)[0]["sync_message"] == "label 'bogus' is not one of: correct, incorrect"


def test_synced_at_is_utc(
    tmp_path: Path, memory: dict[str, MemoryTarget], monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta, timezone

    tokyo = timezone(timedelta(hours=9))

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Frozen:  # type: ignore[override]
            base = cls(2026, 3, 1, 12, 30, 5, tzinfo=UTC)
            return base if tz is UTC else base.astimezone(tz or tokyo)

    monkeypatch.setattr(pipeline, "datetime", Frozen)
    sheet = write_csv(tmp_path / "labels.csv", SPANS[:1])
    runner.invoke(app, ["sync", str(write_mapping(tmp_path))])
    assert csv_rows(sheet)[0]["synced_at"] == "2026-03-01T12:30:05Z"


def test_a_label_without_an_id_gets_its_status_in_place(
    tmp_path: Path, memory: dict[str, MemoryTarget]
) -> None:
    sheet = tmp_path / "labels.csv"
    with sheet.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["span_id", "label", "annotator"])
        # no id and no annotator: nothing to find the row by but its position
        w.writerows([[SPANS[0], "correct", "alice"], ["", "correct", ""]])
    result = json.loads(runner.invoke(app, ["sync", str(write_mapping(tmp_path)), "--json"]).stdout)
    assert result["vanished_rows"] == [] and result["statuses_written"] == 2
    rows = csv_rows(sheet)
    assert [r["sync_status"] for r in rows] == ["synced", "invalid"]
    assert "span_id" in rows[1]["sync_message"]


def test_run_all_skips_the_mappings_after_a_stop_and_passes_the_stop_on(tmp_path: Path) -> None:
    import threading

    from bridge.pipeline import run_all

    paths = []
    for i in range(3):
        write_csv(tmp_path / f"labels-{i}.csv", SPANS[:4])
        paths.append(write_mapping(tmp_path, f"{i}.yaml", f"labels-{i}.csv"))
    stop = threading.Event()

    class Stopping(MemoryTarget):
        def send(self, annotations: Sequence[Annotation], progress: Any = None) -> list[Outcome]:
            stop.set()  # Ctrl-C while the first chunk is in flight
            return super().send(annotations, progress)

    target = Stopping()
    old = pipeline.SEND_CHUNK_ROWS
    pipeline.SEND_CHUNK_ROWS = 2
    try:
        jobs = run_all(paths, stop=stop, target=target)
    finally:
        pipeline.SEND_CHUNK_ROWS = old
    assert [j.mapping for j in jobs] == paths[:1]  # the other two never started
    assert jobs[0].result is not None and jobs[0].result.interrupted
    assert jobs[0].exit_code == 130
    assert target.sent == [SPANS[:2]]  # the first chunk only: the stop reached the run
    stop.set()
    assert run_all(paths, stop=stop, target=MemoryTarget()) == []


def test_run_all_syncs_what_prepare_returns(tmp_path: Path) -> None:
    from bridge.pipeline import run_all

    write_csv(tmp_path / "labels.csv", SPANS[:2], label="good")  # invalid under the file's rules
    path = write_mapping(tmp_path)
    seen: list[Any] = []

    def prepare(mapping: Any) -> Any:
        seen.append(mapping.path)
        specs = [
            a.model_copy(update={"rules": a.rules.model_copy(update={"labels": ["good"]})})
            for a in mapping.annotations
        ]
        return mapping.model_copy(update={"annotations": specs})

    target = MemoryTarget()
    [job] = run_all([path], prepare=prepare, target=target)
    assert seen == [path]
    assert job.exit_code == 0 and target.sent == [SPANS[:2]]


def test_a_failed_mapping_is_logged_with_its_path(
    tmp_path: Path, memory: dict[str, MemoryTarget]
) -> None:
    ok = make_job(tmp_path, 0, "ok", memory)
    broken = make_job(tmp_path, 1, "broken", memory)
    result = runner.invoke(app, ["sync", str(ok), str(broken), "--json"])
    body = json.loads(result.stdout)
    assert set(body["mappings"][1]["error"]) == {"type", "code", "message"}
    assert body["mappings"][1]["error"]["type"] == "MappingError"
    # the path once, then the error (README "Unattended runs": each error printed once)
    assert f"{broken}: MappingError: key 'annotations[0].lable_column'" in result.stderr
    assert result.stderr.count(str(broken)) == 1


def test_the_state_folder_is_the_mappings_then_the_variable_then_the_users(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import platformdirs

    from bridge.state import STATE_ENV, state_dir

    configured = tmp_path / "a" / "b" / "configured"  # parents are created too
    assert state_dir(configured, environ={STATE_ENV: str(tmp_path / "env")}) == configured
    assert configured.is_dir()
    assert (
        state_dir(None, environ={STATE_ENV: str(tmp_path / "x" / "env")}) == tmp_path / "x" / "env"
    )
    default = state_dir(None, environ={})
    assert default == Path(platformdirs.user_state_dir("annobridge"))
    assert default.name == "annobridge" and default.is_dir()
    assert default.is_relative_to(isolated_home)  # the isolated HOME, never the real one
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "from-os"))
    assert state_dir() == tmp_path / "from-os"  # os.environ when no environ is given


def test_each_mapping_has_its_own_lock_and_journal_name(tmp_path: Path) -> None:
    from bridge.state import run_id

    a, b = write_mapping(tmp_path, "a.yaml"), write_mapping(tmp_path, "b.yaml")
    assert run_id(a, "labels.csv") != run_id(b, "labels.csv")
    # the same file by another spelling is the same mapping
    assert run_id(tmp_path / "x" / ".." / "a.yaml", "other") == run_id(a, "labels.csv")
    # embedded use without a mapping file: by source
    assert run_id(None, "sheet A") != run_id(None, "sheet B")
    assert run_id(None, "sheet A") == run_id(None, "sheet A")


def test_a_targets_extra_columns_reach_the_annotations(tmp_path: Path) -> None:
    sheet = tmp_path / "labels.csv"
    with sheet.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["tags", "label", "annotator", "tone"])
        w.writerow(["t1", "good", "alice", "calm"])
    mapping = parse_mapping(
        yaml.safe_load(
            """
source: {type: csv, path: labels.csv}
target:
  type: log10
  url: "http://127.0.0.1:9"
  task_id: t
  json_values: {feedback: label, tone: "column: tone"}
annotations:
  - {name: feedback, id_column: tags, label_column: label, annotator_column: annotator}
"""
        ),
        tmp_path / "m.yaml",
    )
    seen: list[Annotation] = []

    class Keeping(MemoryTarget):
        kind = "tag"

        def send(self, annotations: Sequence[Annotation], progress: Any = None) -> list[Outcome]:
            seen.extend(annotations)
            return super().send(annotations, progress)

    result = run(mapping, target=Keeping())
    assert result.exit_code == 0, result.issues
    assert [a.extra for a in seen] == [{"tone": "calm"}]


class Refusing(MemoryTarget):
    """A target that documents refusals: its ``problems`` check runs before anything is sent."""

    def problems(self, a: Annotation) -> list[str]:
        return [f"not sent: Memory refuses '{a.label}'"] if a.label == "incorrect" else []


def test_the_targets_own_checks_make_a_row_invalid_and_unsent(tmp_path: Path) -> None:
    sheet = tmp_path / "labels.csv"
    with sheet.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["span_id", "label", "annotator"])
        w.writerows([[SPANS[0], "correct", "alice"], [SPANS[1], "incorrect", "alice"]])
    mapping = load_mapping(write_mapping(tmp_path))
    target = Refusing()
    planned = run(mapping, target=target, dry_run=True)
    assert planned.planned == [{"span_id": SPANS[0], "label": "correct"}]
    result = run(mapping, target=target)
    assert target.sent == [[SPANS[0]]]
    assert [(i.sheet_row, i.status, i.message) for i in result.issues] == [
        (3, "invalid", "not sent: Memory refuses 'incorrect'")
    ]
    assert csv_rows(sheet)[1]["sync_status"] == "invalid"


def test_every_problem_of_a_row_is_listed_separated_by_semicolons(
    tmp_path: Path, memory: dict[str, MemoryTarget]
) -> None:
    sheet = write_csv(tmp_path / "labels.csv", ["not-a-span"], label="wrong")
    result = json.loads(runner.invoke(app, ["sync", str(write_mapping(tmp_path)), "--json"]).stdout)
    [issue] = result["issues"]
    assert issue["message"] == "; ".join(
        [
            "span_id 'not-a-span' is not a span id (16 lowercase hex characters, like "
            "67f6740bbe1ddc3f)",
            "label 'wrong' is not one of: correct, incorrect",
        ]
    ), issue
    assert csv_rows(sheet)[0]["sync_message"] == issue["message"]


def test_counts_progress_and_timing_add_up_over_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    write_csv(tmp_path / "labels.csv", SPANS[:5])
    mapping = load_mapping(write_mapping(tmp_path))
    monkeypatch.setattr(pipeline, "SEND_CHUNK_ROWS", 2)
    ticks = iter([100.0, 102.12345])
    monkeypatch.setattr(pipeline, "time", types.SimpleNamespace(monotonic=lambda: next(ticks)))
    progress: list[tuple[int, int]] = []
    target = MemoryTarget()
    result = run(mapping, target=target, on_progress=lambda d, t: progress.append((d, t)))
    assert target.sent == [SPANS[0:2], SPANS[2:4], SPANS[4:5]]
    assert progress == [(0, 5), (2, 5), (4, 5), (5, 5)]  # cumulative, never back
    body = result.to_json()
    assert (body["rows"], body["annotations_sent"], body["statuses_written"]) == (5, 5, 5)
    assert body["seconds"] == 2.123


def test_log_lines_say_what_was_read_sent_and_written(
    tmp_path: Path, memory: dict[str, MemoryTarget]
) -> None:
    write_csv(tmp_path / "labels.csv", SPANS[:3])
    result = runner.invoke(app, ["sync", str(write_mapping(tmp_path)), "--log-format", "json"])
    assert result.exit_code == 0
    messages = [json.loads(line)["message"] for line in result.stderr.splitlines()]
    assert messages == [
        "read 3 rows from labels.csv",
        "sent 3 annotations (3 of 3)",
        "wrote the status of 3 rows to labels.csv",
    ]


def test_only_invalid_rows_to_write_still_stop_on_an_open_file(
    tmp_path: Path, memory: dict[str, MemoryTarget]
) -> None:
    sheet = write_csv(tmp_path / "labels.csv", SPANS[:1], label="wrong")  # nothing to send
    (tmp_path / ".~lock.labels.csv#").write_text("owner")
    before = sheet.read_bytes()
    result = runner.invoke(app, ["sync", str(write_mapping(tmp_path))])
    assert result.exit_code == 3, result.output
    assert "open in Excel or LibreOffice" in result.stderr
    assert sheet.read_bytes() == before


def write_rows(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["span_id", "label", "annotator"])
        w.writerows(rows)
    return path


def set_label(path: Path, index: int, label: str) -> None:
    """Change one label in place, keeping every status column as it is."""
    rows = csv_rows(path)
    rows[index]["label"] = label
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


class Updates(MemoryTarget):
    """Records, per annotation sent, whether it was sent as an update."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.updates: list[tuple[str, bool]] = []
        self.closed = 0

    def send(self, annotations: Sequence[Annotation], progress: Any = None) -> list[Outcome]:
        self.updates += [(a.target_id, a.is_update) for a in annotations]
        return super().send(annotations, progress)

    def close(self) -> None:
        self.closed += 1


def test_rows_after_a_skipped_or_restored_row_are_still_planned(tmp_path: Path) -> None:
    sheet = write_rows(
        tmp_path / "labels.csv",
        [[SPANS[0], "", "alice"], [SPANS[1], "correct", "alice"], [SPANS[2], "correct", "alice"]],
    )
    mapping = load_mapping(write_mapping(tmp_path))
    target = Updates()
    result = run(mapping, target=target)
    assert target.sent == [[SPANS[1], SPANS[2]]]  # the skipped first row stops nothing
    rows = csv_rows(sheet)
    assert rows[0]["sync_status"] == "skipped"
    assert rows[0]["sync_message"] == "no label, score or explanation yet"
    assert result.counts["skipped"] == 1 and result.counts["synced"] == 2
    # new rows are sent as new, not as updates
    assert target.updates == [(SPANS[1], False), (SPANS[2], False)]


def test_an_edit_the_platform_refused_then_undone_is_synced_again_with_its_old_id(
    tmp_path: Path,
) -> None:
    sheet = write_rows(
        tmp_path / "labels.csv", [[SPANS[0], "correct", "alice"], [SPANS[1], "correct", "alice"]]
    )
    mapping = load_mapping(write_mapping(tmp_path))
    run(mapping, target=Updates())
    synced = csv_rows(sheet)
    assert [r["sync_id"] for r in synced] == [f"id-{SPANS[0]}", f"id-{SPANS[1]}"]
    set_label(sheet, 0, "incorrect")
    refusing = Updates(reject={SPANS[0]})
    run(mapping, target=refusing)
    assert refusing.updates == [(SPANS[0], True)]  # an edit goes as an update
    assert csv_rows(sheet)[0]["sync_status"] == "rejected"
    set_label(sheet, 0, "correct")  # undone: the platform still holds what was confirmed
    again = Updates()
    result = run(mapping, target=again)
    assert again.sent == []  # nothing to send for it, nor for the row after it
    rows = csv_rows(sheet)
    assert [r["sync_status"] for r in rows] == ["synced", "synced"]
    assert [r["sync_id"] for r in rows] == [r["sync_id"] for r in synced]
    assert [r["sync_hash"] for r in rows] == [r["sync_hash"] for r in synced]
    assert result.counts["synced"] == 1 and result.counts["unchanged"] == 1


def test_run_closes_only_the_target_it_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_rows(tmp_path / "labels.csv", [[SPANS[0], "correct", "alice"]])
    mapping = load_mapping(write_mapping(tmp_path))
    given = Updates()
    run(mapping, target=given)
    assert given.closed == 0  # the caller's to close
    opened = Updates()
    monkeypatch.setattr(pipeline, "open_target", lambda m, **kw: opened)
    set_label(tmp_path / "labels.csv", 0, "incorrect")
    run(mapping)
    assert opened.closed == 1


class Offline(MemoryTarget):
    """A target whose own checks need the platform, which cannot be reached."""

    def problems(self, a: Annotation) -> list[str]:
        raise TargetUnreachable("cannot reach Memory to read its rules")


def test_validate_skips_checks_that_need_the_platform_but_dry_run_and_sync_do_not(
    tmp_path: Path,
) -> None:
    write_rows(tmp_path / "labels.csv", [[SPANS[0], "correct", "alice"]])
    mapping = load_mapping(write_mapping(tmp_path))
    checked = run(mapping, target=Offline(), send=False)  # validate: warn, go on
    assert checked.exit_code == 0 and checked.counts["pending"] == 1
    with pytest.raises(TargetUnreachable):
        run(mapping, target=Offline(), dry_run=True)
    with pytest.raises(TargetUnreachable):
        run(mapping, target=Offline())


def test_the_mappings_state_dir_holds_the_lock_and_journal(
    tmp_path: Path, isolated_home: Path
) -> None:
    write_rows(tmp_path / "labels.csv", [[SPANS[0], "correct", "alice"]])
    path = write_mapping(tmp_path)
    path.write_text(path.read_text() + "state_dir: own-state\n")
    run(load_mapping(path), target=Updates())
    own = tmp_path / "own-state"
    assert own.is_dir() and any(p.suffix == ".lock" for p in own.iterdir())
    assert not any(Path(os.environ["ANNOBRIDGE_STATE_DIR"]).iterdir())


def test_annotations_carry_the_sheet_and_row_in_their_metadata(tmp_path: Path) -> None:
    write_rows(tmp_path / "labels.csv", [[SPANS[0], "correct", "alice"]])
    seen: list[Annotation] = []

    class Keeping(MemoryTarget):
        def send(self, annotations: Sequence[Annotation], progress: Any = None) -> list[Outcome]:
            seen.extend(annotations)
            return super().send(annotations, progress)

    run(load_mapping(write_mapping(tmp_path)), target=Keeping())
    [a] = seen
    assert a.metadata["sheet"] == "labels.csv" and a.metadata["row"] == 2


def test_statuses_are_written_for_rows_after_unchanged_pending_or_unchanged_invalid_rows(
    tmp_path: Path,
) -> None:
    sheet = write_rows(
        tmp_path / "labels.csv", [[SPANS[0], "correct", "alice"], [SPANS[1], "wrong", "alice"]]
    )
    mapping = load_mapping(write_mapping(tmp_path))
    run(mapping, target=MemoryTarget())  # row 2 synced, row 3 invalid
    rows = csv_rows(sheet)
    rows.append(
        {
            **dict.fromkeys(rows[0], ""),
            "span_id": SPANS[2],
            "label": "correct",
            "annotator": "alice",
        }
    )
    rows.append(
        {
            **dict.fromkeys(rows[0], ""),
            "span_id": SPANS[3],
            "label": "correct",
            "annotator": "alice",
        }
    )
    with sheet.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    # unchanged, still-invalid, then two new rows of which --limit sends one: the new row
    # after the unchanged and invalid ones gets its status all the same
    result = run(mapping, target=MemoryTarget(), limit=1)
    assert result.statuses_written == 1
    assert [r["sync_status"] for r in csv_rows(sheet)] == ["synced", "invalid", "synced", ""]


def test_nothing_to_write_needs_no_writable_sheet(
    tmp_path: Path, memory: dict[str, MemoryTarget]
) -> None:
    sheet = write_csv(tmp_path / "labels.csv", SPANS[:2])
    mapping = write_mapping(tmp_path)
    assert runner.invoke(app, ["sync", str(mapping)]).exit_code == 0
    before = sheet.read_bytes()
    (tmp_path / ".~lock.labels.csv#").write_text("owner")  # opened since, nothing changed
    result = runner.invoke(app, ["sync", str(mapping), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["unchanged"] == 2
    assert sheet.read_bytes() == before


def test_validate_runs_the_targets_own_checks_on_each_annotation(tmp_path: Path) -> None:
    write_rows(
        tmp_path / "labels.csv", [[SPANS[0], "correct", "alice"], [SPANS[1], "incorrect", "alice"]]
    )
    result = run(load_mapping(write_mapping(tmp_path)), target=Refusing(), send=False)
    assert [(i.sheet_row, i.message) for i in result.issues] == [
        (3, "not sent: Memory refuses 'incorrect'")
    ]


def test_a_failed_mappings_error_message_is_in_the_json(
    tmp_path: Path, memory: dict[str, MemoryTarget]
) -> None:
    ok = make_job(tmp_path, 0, "ok", memory)
    down = make_job(tmp_path, 1, "down", memory)
    body = json.loads(runner.invoke(app, ["sync", str(ok), str(down), "--json"]).stdout)
    assert body["mappings"][1]["error"] == {
        "type": "TargetUnreachable",
        "code": "target_unreachable",
        "message": "cannot reach Memory at http://127.0.0.1:9 (refused)",
    }


def test_row_hashes_stay_the_same_across_versions() -> None:
    # Sheets keep sync_hash between runs of different annobridge versions: a hash that
    # changes makes every synced row look edited and sends it all again.
    from bridge.pipeline import row_hash

    a = annotation(0, SPANS[0], label="très bien ✓")
    b = annotation(1, SPANS[1], label="correct")
    assert row_hash("phoenix|http://x|span", [a]) == row_hash("phoenix|http://x|span", [a])
    assert row_hash("phoenix|http://x|span", [a]) != row_hash("phoenix|http://y|span", [a])
    assert row_hash("phoenix|http://x|span", [a, b]) == GOLDEN_HASH


GOLDEN_HASH = "8f4438230c3b59a4"  # computed by annobridge 0.1.0
