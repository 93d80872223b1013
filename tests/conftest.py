"""Shared fixtures: a clean environment for every test, and real local servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Variables that would point annobridge, or the servers it talks to, somewhere else.
_FOREIGN_ENV = ("PHOENIX_", "ARIZE_", "MLFLOW_", "LOG10_", "GOOGLE_", "BRIDGE_", "OTEL_")
# Ours, set by the Makefile: where the server virtualenvs are, whether to re-record.
_KEEP = {"ANNOBRIDGE_PHOENIX_PYTHON", "ANNOBRIDGE_MLFLOW_PYTHON", "ANNOBRIDGE_RECORD"}


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's PHOENIX_API_KEY, MLFLOW_TRACKING_URI and the like."""
    for name in list(os.environ):
        if name.startswith(_FOREIGN_ENV) or (name.startswith("ANNOBRIDGE_") and name not in _KEEP):
            monkeypatch.delenv(name, raising=False)


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
