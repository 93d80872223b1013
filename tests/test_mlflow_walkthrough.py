"""The README's MLflow steps, run as written on a real local MLflow (issue 13, item 8): they
work, every file they make is in a git-ignored folder, and a second seeding on the same
server makes new trace ids instead of moving the first experiment's traces.

The block runs in a copy of the repository's layout in a temporary folder (examples scripts
and mappings copied, the virtualenvs linked), with three changes a test needs: a free port
for 5000, one server worker, and a wait for the server before the next command (a person
typing the commands gives it that time).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mlflow_server import mlflow_python
from tests.servers import free_port

pytestmark = pytest.mark.mlflow
ROOT = Path(__file__).resolve().parent.parent
FOLDER = "examples/.mlflow-demo"


def readme_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    [block] = [b for b in blocks if f"mkdir -p {FOLDER}" in b]
    return block


def runnable(block: str, port: int) -> str:
    lines = ["set -euo pipefail"]
    for line in block.splitlines():
        if line.strip() == "make servers":
            continue  # built already (the mlflow marker needs them)
        line = line.replace("5000", str(port))
        if "mlflow server" in line and line.rstrip().endswith("&"):
            command, _, redirect = line.rstrip()[:-1].partition(">")
            lines.append(f"{command.rstrip()} --workers 1 >{redirect} &")
            lines.append("echo $! > server.pid")
            lines.append(
                f"{sys.executable} -c 'import time, urllib.request as u\n"
                "for _ in range(600):\n"
                '    try: u.urlopen("http://127.0.0.1:'
                f'{port}/health", timeout=1); break\n'
                "    except Exception: time.sleep(0.3)'"
            )
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def files_under(root: Path) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
        out |= {str((Path(dirpath) / f).relative_to(root)) for f in filenames}
    return out


def test_the_readme_mlflow_steps_run_and_leave_the_repository_clean(tmp_path: Path) -> None:
    mlflow_python()  # fails with the fix when `make servers` has not run
    repo = tmp_path / "repo"
    (repo / "examples").mkdir(parents=True)
    for name in ("seed_mlflow_traces.py", "build_mlflow_workbook.py"):
        shutil.copy(ROOT / "examples" / name, repo / "examples" / name)
    shutil.copytree(ROOT / "mappings", repo / "mappings")
    (repo / ".cache").symlink_to(ROOT / ".cache")
    (repo / ".venv").symlink_to(ROOT / ".venv")
    before = files_under(repo)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    env.update(
        PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(tmp_path / "home"),
        ANNOBRIDGE_STATE_DIR=str(tmp_path / "state"),
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
    )
    script = runnable(readme_block(), port)
    process = subprocess.Popen(
        ["bash", "-c", script],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    demo = repo / FOLDER
    try:
        output, _ = process.communicate(timeout=900)
        assert process.returncode == 0, output[-4000:]
        assert "synced mlflow-labels.xlsx/By request id -> mlflow: 10 rows" in output
        assert "synced mlflow-labels.xlsx/By trace id -> mlflow: 10 rows" in output

        # everything the steps made is in the one folder, and git ignores that folder
        made = files_under(repo) - before
        assert made and all(f.startswith(FOLDER + "/") for f in made), sorted(made)
        for name in ("mlflow.db", "traces.json", "mlflow-labels.xlsx", "mlflow-trace-ids.yaml"):
            assert f"{FOLDER}/{name}" in made, name
            ignored = subprocess.run(
                ["git", "check-ignore", "-q", f"{FOLDER}/{name}"], cwd=ROOT
            ).returncode
            assert ignored == 0, f"{FOLDER}/{name} is not git-ignored"

        # a second seeding, of another experiment and of the same one: new trace ids, and
        # the first experiment keeps its traces (the sheet still holds all of them)
        first = {t["trace_id"] for t in json.loads((demo / "traces.json").read_text())}
        seed_env = {k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"}
        for experiment, out in (("another-app", "other.json"), ("annobridge-demo", "again.json")):
            done = subprocess.run(
                [
                    str(mlflow_python()),
                    "../seed_mlflow_traces.py",
                    "--url",
                    f"http://127.0.0.1:{port}",
                    "--experiment",
                    experiment,
                    "--count",
                    "10",
                    "--out",
                    out,
                ],  # fmt: skip
                cwd=demo,
                env=seed_env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, done.stderr[-2000:]
            ids = {t["trace_id"] for t in json.loads((demo / out).read_text())}
            assert len(ids) == 10 and not ids & first, experiment
        listed = subprocess.run(
            [
                str(ROOT / ".venv" / "bin" / "annobridge"),
                "export",
                "mlflow-request-ids.yaml",
                "--dry-run",
                "--json",
            ],  # fmt: skip
            cwd=demo,
            env={**env, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        body = json.loads(listed.stdout)
        assert body["skipped"]["in_sheet"] == 10, body  # the first ten are still there
        assert body["appended"] == 10  # and the second seeding's ten are new
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # the bash we started and its server
        except ProcessLookupError:
            pass
        pid_file = demo / "server.pid"
        if pid_file.exists():
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGTERM)
            except (ProcessLookupError, PermissionError, ValueError):
                pass
            try:
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            except (ProcessLookupError, PermissionError, ValueError):
                pass
