"""A real local MLflow tracking server for tests, benchmarks and examples.

It runs from its own virtualenv (``make servers`` builds it; ANNOBRIDGE_MLFLOW_PYTHON names
its python), on a free loopback port, with SQLite and artifacts in a directory the caller
owns. ``auth=True`` starts it with the basic-auth app (needs ``mlflow[auth]``) and an admin
whose password is ``admin_password``.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers import NO_TELEMETRY, ROOT, free_port, launch

DEFAULT_MLFLOW_PYTHON = ROOT / ".cache" / "servers" / "mlflow" / "bin" / "python"
API = "/api/3.0/mlflow"


def mlflow_python() -> Path:
    """The Python of the MLflow virtualenv; fails with the fix when it is missing."""
    path = Path(os.environ.get("ANNOBRIDGE_MLFLOW_PYTHON") or DEFAULT_MLFLOW_PYTHON)
    if not path.exists():
        raise RuntimeError(
            f"MLflow is not installed at {path}; run 'make servers' (or 'make test', which "
            "installs it) first"
        )
    return path


def _client_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    return {**env, **(extra or {}), **NO_TELEMETRY}


@dataclass
class MlflowServer:
    """An ``mlflow server`` process on 127.0.0.1 with SQLite and artifacts in ``workdir``.

    :param workers: uvicorn workers; None keeps MLflow's default (4), as users run it.
    :param jobs: keep MLflow's background job runner (huey); tests turn it off to save CPU.
    """

    workdir: Path
    port: int = 0
    workers: int | None = None
    jobs: bool = True
    auth: bool = False
    admin_password: str = "admin-password-for-tests-0123"
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> MlflowServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        python = mlflow_python()
        env = _client_env(
            {
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true" if self.jobs else "false",
                "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false",
                **self.env,
            }
        )
        cmd = [
            str(python.parent / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.workdir / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.workdir / "mlartifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        if self.workers is not None:
            cmd += ["--workers", str(self.workers)]
        if self.auth:
            ini = self.workdir / "basic_auth.ini"
            ini.write_text(
                "[mlflow]\n"
                "default_permission = READ\n"
                f"database_uri = sqlite:///{self.workdir / 'basic_auth.db'}\n"
                "admin_username = admin\n"
                f"admin_password = {self.admin_password}\n"
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            )
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
            env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", "annobridge-tests-csrf-key-0123")
            cmd += ["--app-name", "basic-auth"]
        self.process = launch(
            cmd,
            env=env,
            workdir=self.workdir,
            cwd=self.workdir,
            name="MLflow",
            health_url=f"{self.url}/health",
            timeout=timeout,
        )
        return self

    def stop(self) -> None:
        """SIGTERM the server; its workers and job runner are in the group it leads."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process:
            try:  # workers left behind by a killed parent: only our own process group
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.process = None

    def kill(self) -> None:
        """SIGKILL the whole server at once, as a crash or a pulled cable would."""
        if self.process:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)
        self.process = None

    def restart(self, timeout: float = 180.0) -> MlflowServer:
        """Stop and start again on the same port and database."""
        self.stop()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the port is free once the old workers are gone
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1):
                    pass
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                break
            time.sleep(0.2)
        return self.start(timeout)

    # -- seeding and reading back (as an admin when auth is on) ---------------------------

    def credentials_env(self) -> dict[str, str]:
        if not self.auth:
            return {}
        return {
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": self.admin_password,
        }

    def seed(
        self,
        out: Path,
        *,
        experiment: str,
        count: int = 10,
        seed: int = 7,
        request_prefix: str = "req",
        shared_request_id: str | None = None,
        shared_count: int = 2,
        threads: int = 1,
        timeout: float = 900.0,
    ) -> list[dict[str, Any]]:
        """Create ``count`` traces through the MLflow SDK (synchronous export)."""
        cmd = [
            str(mlflow_python()),
            str(ROOT / "examples" / "seed_mlflow_traces.py"),
            "--url", self.url,
            "--experiment", experiment,
            "--count", str(count),
            "--seed", str(seed),
            "--request-prefix", request_prefix,
            "--threads", str(threads),
            "--out", str(out),
        ]  # fmt: skip
        if shared_request_id:
            cmd += ["--shared-request-id", shared_request_id, "--shared-count", str(shared_count)]
        done = subprocess.run(
            cmd,
            env=_client_env(self.credentials_env()),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise RuntimeError(f"seeding MLflow failed: {done.stderr.strip()[-800:]}")
        records: list[dict[str, Any]] = json.loads(out.read_text())
        return records

    def call(self, method: str, path: str, body: Any = None, *, admin: bool = True) -> Any:
        """One REST call to the server (path below /api/3.0/mlflow unless it starts /api)."""
        url = f"{self.url}{path if path.startswith('/api') else API + path}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.auth and admin:
            token = base64.b64encode(f"admin:{self.admin_password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=60) as r:
            return json.load(r)

    def assessments(self, trace_id: str) -> list[dict[str, Any]]:
        """Every assessment stored on a trace, valid or not (read back what landed)."""
        body = self.call("GET", f"/traces/{trace_id}")
        found: list[dict[str, Any]] = body["trace"]["trace_info"].get("assessments", [])
        return found

    def create_user(self, username: str, password: str) -> None:
        self.call(
            "POST", "/api/2.0/mlflow/users/create", {"username": username, "password": password}
        )

    def grant(self, username: str, experiment_id: str, permission: str = "EDIT") -> None:
        self.call(
            "POST",
            "/api/3.0/mlflow/users/permissions/grant",
            {
                "username": username,
                "resource_type": "experiment",
                "resource_id": experiment_id,
                "permission": permission,
            },
        )


def serving(tmp_path_factory: Any, name: str) -> Iterator[MlflowServer]:
    """A module's own MLflow server (one worker, no job runner), stopped after the module:
    ``yield from serving(tmp_path_factory, "mlflow-x")`` in a module-scoped fixture."""
    server = MlflowServer(tmp_path_factory.mktemp(name), workers=1, jobs=False).start()
    try:
        yield server
    finally:
        server.stop()


def server_fixture(name: str) -> Any:
    """A module-scoped ``server`` fixture serving that module's own MLflow (see ``serving``):
    ``server = server_fixture("mlflow-x")`` at module level."""

    @pytest.fixture(scope="module")
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
        yield from serving(tmp_path_factory, name)

    return server


def traces_fixture(experiment: str, *, count: int, seed: int) -> Any:
    """A module-scoped ``traces`` fixture: ``count`` traces seeded once into ``experiment``
    of the module's ``server``."""

    @pytest.fixture(scope="module")
    def traces(
        server: MlflowServer, tmp_path_factory: pytest.TempPathFactory
    ) -> list[dict[str, Any]]:
        out = tmp_path_factory.mktemp("seed") / "traces.json"
        return server.seed(out, experiment=experiment, count=count, seed=seed)

    return traces


def write_mapping(
    path: Path, server: MlflowServer, experiment: str, annotations: str, target: str = ""
) -> Path:
    """A mapping at ``path``: the Labels sheet of labels.xlsx into ``experiment`` on this
    server; ``target`` adds lines to the target block, ``annotations`` is the YAML list."""
    path.write_text(
        f"""source:
  type: excel
  path: labels.xlsx
  worksheet: Labels
target:
  type: mlflow
  url: {server.url}
  experiment: {experiment}
{target}
annotations:
{annotations}
""",
        encoding="utf-8",
    )
    return path
