"""Shared fixtures: a clean, isolated environment for every test, and real local servers."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import netguard

# No test may reach outside the machine: refused before any packet leaves (tests/netguard.py).
netguard.install()

# Variables that would point annobridge, or the servers it talks to, somewhere else.
_FOREIGN_ENV = ("PHOENIX_", "ARIZE_", "MLFLOW_", "LOG10_", "GOOGLE_", "BRIDGE_", "OTEL_")
# Ours, set by the Makefile: where the server virtualenvs are, whether to re-record.
_KEEP = {"ANNOBRIDGE_PHOENIX_PYTHON", "ANNOBRIDGE_MLFLOW_PYTHON", "ANNOBRIDGE_RECORD"}


# The home the suite was started with: nothing may be written there.
STARTED_HOME = os.environ.get("HOME", "")
_HOME_AND_XDG = {
    "HOME": "home",
    "XDG_CONFIG_HOME": "home/.config",
    "XDG_STATE_HOME": "home/.local/state",
    "XDG_DATA_HOME": "home/.local/share",
    "XDG_CACHE_HOME": "home/.cache",
}


@pytest.fixture(scope="session", autouse=True)
def isolated_session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The fixtures shared by a whole session (servers started once, traces seeded once) run
    before any test's own ``isolated_home``: they get a home of the session's own, so nothing
    they start writes into the developer's (importing phoenix makes ``~/.phoenix``)."""
    root = tmp_path_factory.mktemp("session")
    with pytest.MonkeyPatch.context() as patch:
        for name, place in _HOME_AND_XDG.items():
            (root / place).mkdir(parents=True, exist_ok=True)
            patch.setenv(name, str(root / place))
        yield root


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's PHOENIX_API_KEY, MLFLOW_TRACKING_URI and the like."""
    for name in list(os.environ):
        if name.startswith(_FOREIGN_ENV) or (name.startswith("ANNOBRIDGE_") and name not in _KEEP):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def isolated_home(
    clean_environ: None, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Nothing a test runs writes into the developer's home, state folder or /tmp.

    The state folder (locks, journal), HOME (and so ~/.config, ~/.local/state), every XDG
    base directory and the temp directory point into a fresh directory of this test's own.
    It is not ``tmp_path`` itself, so tests that list their tmp_path see only their files.
    """
    root = tmp_path_factory.mktemp("isolated")
    places = {
        "ANNOBRIDGE_STATE_DIR": root / "state",
        **{name: root / place for name, place in _HOME_AND_XDG.items()},
        "XDG_RUNTIME_DIR": root / "runtime",
        "TMPDIR": root / "tmp",
    }
    for name, path in places.items():
        path.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(name, str(path))
    for name in ("TEMP", "TMP"):
        monkeypatch.setenv(name, str(places["TMPDIR"]))
    monkeypatch.setattr(tempfile, "tempdir", str(places["TMPDIR"]))
    return root


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real Phoenix on a free loopback port with a temp data dir, for the whole session."""
    from tests.servers import PhoenixServer

    server = PhoenixServer(tmp_path_factory.mktemp("phoenix-data")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def seeded_spans(phoenix: object, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    """Forty traces of the demo app, seeded through OpenTelemetry into project 'tests'."""
    from tests.servers import PhoenixServer

    assert isinstance(phoenix, PhoenixServer)
    out = Path(tmp_path_factory.mktemp("seed")) / "spans.json"
    return phoenix.seed(out, project="tests", count=40, seed=11)


@pytest.fixture(scope="session")
def retriever_spans(
    phoenix: object, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    """Six traces with a RETRIEVER span of three documents each, in project 'rag'."""
    from tests.servers import PhoenixServer

    assert isinstance(phoenix, PhoenixServer)
    out = Path(tmp_path_factory.mktemp("seed-rag")) / "spans.json"
    return phoenix.seed(out, project="rag", count=6, seed=23, retriever=True)
