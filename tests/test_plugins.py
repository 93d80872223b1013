"""A platform and a medium added from outside bridge/, as entry-point plug-ins.

The plug-in (tests/plugin_example/acme_annobridge.py) is installed the way pip would: a
``.dist-info`` folder with ``entry_points.txt`` in a temporary site directory on the path of a
fresh process. The whole sync runs through it (read, validate, send, write back) with no
edit to bridge/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent / "plugin_example" / "acme_annobridge.py"
SPAN_A, SPAN_B = "67f6740bbe1ddc3f", "0a1b2c3d4e5f6071"


def install(site: Path, targets: dict[str, str], sources: dict[str, str]) -> None:
    site.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE, site / EXAMPLE.name)
    info = site / "acme_annobridge-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-annobridge\nVersion: 0.1\n", encoding="utf-8"
    )
    lines = ["[annobridge.targets]", *(f"{k} = {v}" for k, v in targets.items())]
    lines += ["", "[annobridge.sources]", *(f"{k} = {v}" for k, v in sources.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def annobridge(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "ANNOBRIDGE_STATE_DIR": str(cwd / "state")}
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def counts(stdout: str) -> dict[str, int]:
    return {k: v for k, v in json.loads(stdout)["counts"].items() if v}


MAPPING = """
source:
  type: jsonrows
  path: rows.json
target:
  type: acme
  store: store.json
annotations:
  - name: correctness
    id_column: span_id
    label_column: label
    annotator_column: annotator
    rules:
      labels: [correct, incorrect]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    install(
        tmp_path / "site",
        {"acme": "acme_annobridge:TARGET", "broken": "acme_annobridge:NOT_A_PLUGIN"},
        {"jsonrows": "acme_annobridge:SOURCE", "missing": "no_such_module:SOURCE"},
    )
    rows = [
        {"span_id": SPAN_A, "label": "correct", "annotator": "alice"},
        {"span_id": SPAN_B, "label": "Incorrect", "annotator": "bob"},
        {"span_id": "not-a-span", "label": "correct", "annotator": "carol"},
    ]
    (tmp_path / "rows.json").write_text(json.dumps(rows), encoding="utf-8")
    (tmp_path / "labels.yaml").write_text(MAPPING, encoding="utf-8")
    return tmp_path


def test_a_whole_sync_runs_through_a_plugin_medium_and_platform(project: Path) -> None:
    site = project / "site"
    first = annobridge(site, "sync", "labels.yaml", "--json", cwd=project)
    assert first.returncode == 1, first.stderr  # the third row is invalid
    assert counts(first.stdout) == {"synced": 2, "invalid": 1}
    store = json.loads((project / "store.json").read_text())
    assert store == {
        f"{SPAN_A}|correctness|annobridge:alice": {
            "label": "correct",
            "score": None,
            "explanation": None,
        },
        f"{SPAN_B}|correctness|annobridge:bob": {
            "label": "incorrect",  # the rules normalised the case before sending
            "score": None,
            "explanation": None,
        },
    }
    rows = json.loads((project / "rows.json").read_text())
    assert [r["sync_status"] for r in rows] == ["synced", "synced", "invalid"]
    assert "not a span id" in rows[2]["sync_message"]
    assert rows[0]["sync_id"] == f"{SPAN_A}|correctness|annobridge:alice"
    # a second run sends nothing: the plug-in gets the same idempotence as built-ins
    (project / "store.json").unlink()
    again = annobridge(site, "sync", "labels.yaml", "--json", cwd=project)
    assert counts(again.stdout) == {"unchanged": 2, "invalid": 1}
    assert not (project / "store.json").exists()


def test_a_plugin_config_gets_did_you_mean_like_a_built_in_one(project: Path) -> None:
    (project / "labels.yaml").write_text(
        MAPPING.replace("store: store.json", "stor: store.json"), encoding="utf-8"
    )
    out = annobridge(project / "site", "validate", "labels.yaml", cwd=project)
    assert out.returncode == 2
    assert "key 'target.stor': unknown key 'stor'; did you mean 'store'?" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_plugin_that_cannot_load_is_a_configuration_error(project: Path) -> None:
    (project / "labels.yaml").write_text(
        MAPPING.replace("type: jsonrows", "type: missing"), encoding="utf-8"
    )
    out = annobridge(project / "site", "validate", "labels.yaml", cwd=project)
    assert out.returncode == 2, out.stderr
    assert "the plug-in 'missing' (no_such_module:SOURCE" in out.stderr
    assert "cannot be loaded: ModuleNotFoundError" in out.stderr
    assert "Traceback" not in out.stderr


def test_an_entry_point_that_names_no_plugin_is_refused(project: Path) -> None:
    (project / "labels.yaml").write_text(
        MAPPING.replace("type: acme", "type: broken"), encoding="utf-8"
    )
    out = annobridge(project / "site", "validate", "labels.yaml", cwd=project)
    assert out.returncode == 2, out.stderr
    assert "is not a TargetPlugin" in out.stderr
    assert "Traceback" not in out.stderr


def test_without_the_plugin_the_type_is_unknown(project: Path) -> None:
    out = annobridge(project / "nowhere", "validate", "labels.yaml", cwd=project)
    assert out.returncode == 2
    assert "jsonrows" in out.stderr and "Traceback" not in out.stderr
