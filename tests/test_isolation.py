"""The suite itself keeps its promises: no test writes into the developer's home or state
folder, none reaches outside 127.0.0.1, and the servers it starts have telemetry off."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import platformdirs
import pytest

from bridge.state import state_dir
from tests import netguard, servers
from tests.netguard import OutsideNetworkError


def test_state_home_and_temp_point_into_this_tests_directory(isolated_home: Path) -> None:
    real_home = Path(os.path.expanduser("~"))  # already the isolated one
    assert real_home.is_relative_to(isolated_home)
    assert state_dir().is_relative_to(isolated_home)
    # with no ANNOBRIDGE_STATE_DIR, the platform default is under the isolated HOME/XDG too
    assert Path(platformdirs.user_state_dir("annobridge")).is_relative_to(isolated_home)
    assert state_dir(environ={}).is_relative_to(isolated_home)
    assert Path(tempfile.gettempdir()).is_relative_to(isolated_home)
    with tempfile.NamedTemporaryFile() as f:
        assert Path(f.name).is_relative_to(isolated_home)
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        assert Path(os.environ[name]).is_relative_to(isolated_home), name


def test_each_test_gets_its_own_state_folder(isolated_home: Path) -> None:
    # tmp_path_factory numbers them: never the same directory twice in one session
    assert isolated_home.name.startswith("isolated")
    assert not (isolated_home / "state" / "anything.lock").exists()


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the real socket calls behind the guard: a call reaching them is recorded."""
    called: list[str] = []
    for name in netguard.real:
        monkeypatch.setitem(
            netguard.real,
            name,
            lambda *a, _n=name, **k: called.append(_n),  # type: ignore[misc]
        )
    return called


@pytest.mark.parametrize("address", [("10.255.255.1", 80), ("93.184.215.14", 443)])
def test_the_guard_refuses_an_outside_address_before_connecting(
    spies: list[str], address: tuple[str, int]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        with pytest.raises(OutsideNetworkError, match=r"may only reach 127\.0\.0\.1"):
            s.connect(address)
        with pytest.raises(OutsideNetworkError):
            s.connect_ex(address)
    assert spies == []  # the real connect was never called: no packet left


def test_the_guard_refuses_to_look_up_a_public_name(spies: list[str]) -> None:
    with pytest.raises(OutsideNetworkError, match="look up 'example.com'"):
        socket.getaddrinfo("example.com", 443)
    with pytest.raises(OutsideNetworkError):
        socket.gethostbyname("pypi.org")
    with pytest.raises(OutsideNetworkError):
        socket.create_connection(("oauth2.googleapis.com", 443), timeout=1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(OutsideNetworkError):
            s.sendto(b"x", ("8.8.8.8", 53))
    assert spies == []  # no DNS query either


def test_the_guard_stops_requests_too() -> None:
    import requests

    with pytest.raises(OutsideNetworkError):
        requests.get("https://sheets.googleapis.com/v4/spreadsheets/x", timeout=1)


def test_loopback_still_works() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        for host in ("127.0.0.1", "localhost"):
            with socket.create_connection((host, port), timeout=5):
                pass
            server.accept()[0].close()


def test_every_server_the_tests_start_has_telemetry_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[dict[str, str]] = []

    class Stop(Exception):
        pass

    def popen(cmd: Any, env: dict[str, str], **kw: Any) -> Any:
        seen.append(env)
        raise Stop

    def run(cmd: Any, env: dict[str, str], **kw: Any) -> Any:
        seen.append(env)
        raise Stop

    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(subprocess, "run", run)
    # a user's own opt-out must not be what makes it off: start from the opposite
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")
    monkeypatch.setenv("DO_NOT_TRACK", "false")
    monkeypatch.setenv("PHOENIX_TELEMETRY_ENABLED", "true")
    monkeypatch.setattr(servers, "phoenix_python", lambda: tmp_path / "bin" / "python")
    from tests import mlflow_server

    monkeypatch.setattr(mlflow_server, "mlflow_python", lambda: tmp_path / "bin" / "python")
    starts = [
        lambda: servers.PhoenixServer(tmp_path / "p").start(),
        lambda: servers.PhoenixServer(tmp_path / "p", port=1).seed(tmp_path / "s.json"),
        lambda: mlflow_server.MlflowServer(tmp_path / "m").start(),
        lambda: mlflow_server.MlflowServer(tmp_path / "m", auth=True).start(),
        lambda: mlflow_server.MlflowServer(tmp_path / "m", port=1).seed(
            tmp_path / "t.json", experiment="e"
        ),
    ]
    for start in starts:
        with pytest.raises(Stop):
            start()
    assert len(seen) == len(starts)
    for env in seen:
        assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
        assert env["DO_NOT_TRACK"] == "true"  # MLflow compares it with "true", not "1"
        assert env["PHOENIX_TELEMETRY_ENABLED"] == "false"


def test_stand_ins_share_no_logic_with_the_code_they_check() -> None:
    """A stand-in that validates with the target's own code cannot disagree with it."""
    import ast

    for path in sorted(Path(__file__).parent.glob("*standin*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert not name.startswith("jsonschema"), f"{path.name} imports {name}"
                # the record type only (to drive the pipeline), never a target or a rule
                assert not name.startswith("bridge") or name == "bridge.records", (
                    f"{path.name} imports {name}"
                )


@pytest.fixture(scope="session")
def home_of_a_session_fixture() -> str:
    return os.environ["HOME"]


def test_session_fixtures_run_in_a_home_of_the_sessions_own(
    home_of_a_session_fixture: str, isolated_session_home: Path
) -> None:
    # servers and seeding start once per session, before any test's isolated_home
    from tests.conftest import STARTED_HOME

    assert home_of_a_session_fixture == str(isolated_session_home / "home")
    assert home_of_a_session_fixture != STARTED_HOME
