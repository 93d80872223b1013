"""Real local servers for tests, benchmarks and the demo: Phoenix on 127.0.0.1.

Each server runs from its own virtualenv (``make servers`` builds them), on a free loopback
port, with its data in a directory the caller owns.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Every server and SDK process the tests start has its telemetry off (names checked in the
# installed packages: mlflow/telemetry/utils.py reads MLFLOW_DISABLE_TELEMETRY and
# DO_NOT_TRACK == "true"; phoenix/config.py reads PHOENIX_TELEMETRY_ENABLED).
NO_TELEMETRY = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "PHOENIX_TELEMETRY_ENABLED": "false",
}
DEFAULT_PHOENIX_PYTHON = ROOT / ".cache" / "servers" / "phoenix" / "bin" / "python"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def phoenix_python() -> Path:
    """The Python of the Phoenix virtualenv; fails with the fix when it is missing."""
    path = Path(os.environ.get("ANNOBRIDGE_PHOENIX_PYTHON") or DEFAULT_PHOENIX_PYTHON)
    if not path.exists():
        raise RuntimeError(
            f"Phoenix is not installed at {path}; run 'make servers' (or 'make test', which "
            "installs it) first"
        )
    return path


def launch(
    cmd: list[str],
    *,
    env: dict[str, str],
    workdir: Path,
    name: str,
    health_url: str,
    timeout: float,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server in its own session, logging to ``workdir/<name>.log``, and wait until
    ``health_url`` answers 200; a server that exits or stays silent fails with its log."""
    log_path = workdir / f"{name.lower()}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the process
    try:
        process = subprocess.Popen(
            cmd,
            env={**env, **NO_TELEMETRY},
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited at start; see {log_path}")
        try:
            with urllib.request.urlopen(health_url, timeout=2) as r:
                if r.status == 200:
                    return process
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    os.killpg(process.pid, signal.SIGKILL)  # the server and any workers it started
    process.wait(timeout=10)
    raise RuntimeError(f"{name} did not start in {timeout}s; see {log_path}")


@dataclass
class PhoenixServer:
    """A Phoenix process on 127.0.0.1 with its data in ``workdir``."""

    workdir: Path
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> PhoenixServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        python = phoenix_python()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PHOENIX_")},
            "PHOENIX_WORKING_DIR": str(self.workdir),
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.port),
            # gRPC always binds all interfaces; give it a free port so servers can coexist.
            "PHOENIX_GRPC_PORT": str(free_port()),
            "PHOENIX_TELEMETRY_ENABLED": "false",
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
            **self.env,
        }
        self.process = launch(
            [str(python.parent / "phoenix"), "serve"],
            env=env,
            workdir=self.workdir,
            name="Phoenix",
            health_url=f"{self.url}/healthz",
            timeout=timeout,
        )
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def seed(
        self,
        out: Path,
        *,
        project: str = "default",
        count: int = 20,
        seed: int = 7,
        api_key: str | None = None,
        timeout: float = 300.0,
        retriever: bool = False,
    ) -> list[dict[str, Any]]:
        """Send ``count`` traces through OpenTelemetry and wait until they are stored (with
        ``retriever``, each with a RETRIEVER span of three documents)."""
        cmd = [
            str(phoenix_python()),
            str(ROOT / "examples" / "seed_traces.py"),
            "--url",
            self.url,
            "--project",
            project,
            "--count",
            str(count),
            "--seed",
            str(seed),
            "--out",
            str(out),
            "--timeout",
            str(timeout),
        ]
        if api_key:
            cmd += ["--api-key", api_key]
        if retriever:
            cmd.append("--retriever")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))}
        # importing phoenix makes its working folder: the server's, never ~/.phoenix
        env["PHOENIX_WORKING_DIR"] = str(self.workdir / "seeding")
        done = subprocess.run(
            cmd, env={**env, **NO_TELEMETRY}, capture_output=True, text=True, timeout=timeout + 60
        )
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise RuntimeError(f"seeding Phoenix failed: {done.stderr.strip()[-500:]}")
        records: list[dict[str, Any]] = json.loads(out.read_text())
        return records

    def get(self, path: str, token: str | None = None) -> Any:
        request = urllib.request.Request(f"{self.url}{path}")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.load(r)

    def post(self, path: str, body: Any) -> Any:
        """One JSON POST to the server (REST or /graphql); the decoded JSON answer."""
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.load(r)

    def span_annotations(
        self, span_ids: list[str], project: str = "default", token: str | None = None
    ) -> list[dict[str, Any]]:
        """Every annotation Phoenix holds for these spans (read back what landed)."""
        from urllib.parse import urlencode

        out: list[dict[str, Any]] = []
        for i in range(0, len(span_ids), 1000):
            cursor = ""
            while True:
                q = [("span_ids", s) for s in span_ids[i : i + 1000]] + [("limit", "10000")]
                if cursor:
                    q.append(("cursor", cursor))
                try:
                    body = self.get(
                        f"/v1/projects/{project}/span_annotations?{urlencode(q)}", token
                    )
                except urllib.error.HTTPError as exc:
                    if exc.code == 404:
                        break
                    raise
                out.extend(body["data"])
                cursor = body.get("next_cursor") or ""
                if not cursor:
                    break
        return out
