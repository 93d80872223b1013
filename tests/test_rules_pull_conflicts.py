"""`rules pull` that would make every row invalid is refused, and says why (issue 16, item 8).

With ``target.values: {correctness: pass_fail}`` and an MLflow label schema of three labels,
the pull wrote the three labels and exited 0; then every row was ``invalid: label 'correct'
is neither 'pass' (pass) nor 'fail' (fail)``. The MLflow label schema is faked here, as in
tests/test_platform_rules.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bridge import platform_rules, registry
from bridge.cli import app
from bridge.errors import RulesConflict
from bridge.mapping import load_mapping
from bridge.platform_rules import compare, pull
from bridge.records import Annotation, PlatformRule
from bridge.rules import identifier_for
from bridge.targets.mlflow.rules import from_mlflow_schema

THREE = from_mlflow_schema(
    {
        "name": "correctness",
        "input": {"categorical": {"options": ["correct", "incorrect", "partial"]}},
    }
)
TWO = from_mlflow_schema(
    {"name": "correctness", "input": {"categorical": {"options": ["correct", "incorrect"]}}}
)


class Schemas:
    """An MLflow target stand-in that knows the experiment's label schemas."""

    name = "mlflow"

    def __init__(self, *rules: PlatformRule) -> None:
        self.rules = {r.name: r for r in rules}

    def fetch_rules(self, names: list[str]) -> dict[str, PlatformRule]:
        return {n: self.rules[n] for n in names if n in self.rules}

    def close(self) -> None:
        pass


def write(tmp_path: Path, target: str, labels: str = "[correct, incorrect]") -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(
        "source:\n  type: excel\n  path: labels.xlsx\n"
        "target:\n  type: mlflow\n  url: http://127.0.0.1:9\n  experiment: e\n"
        f"{target}"
        "annotations:\n"
        "  - name: correctness\n    id_column: trace_id\n    label_column: label\n"
        f"    rules:\n      labels: {labels}   # ours\n"
    )
    return path


def test_a_pull_that_conflicts_with_pass_fail_leaves_the_mapping_and_names_the_conflict(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "  values: {correctness: pass_fail}\n")
    before = path.read_bytes()
    with pytest.raises(RulesConflict) as err:
        pull(load_mapping(path), target=Schemas(THREE))
    assert err.value.exit_code == 1
    message = str(err.value)
    assert "the platform's rules conflict with the mapping, which was left as it was" in message
    assert "MLflow label schema 'correctness' (categorical) gives 3 labels" in message
    assert "target.values.correctness is pass_fail, which takes two (pass first)" in message
    assert "Set target.values.correctness: categorical" in message
    assert path.read_bytes() == before  # unchanged
    with pytest.raises(RulesConflict):  # --dry-run / --check and --rules-from-platform too
        compare(load_mapping(path), Schemas(THREE))


def test_the_cli_exits_1_with_the_conflict_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "  values: {correctness: pass_fail}\n")
    before = path.read_bytes()
    monkeypatch.setattr(platform_rules, "open_target", lambda mapping, **kw: Schemas(THREE))
    result = CliRunner().invoke(app, ["rules", "pull", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith("RulesConflict: ")
    assert "target.values.correctness is pass_fail" in result.stderr
    assert "Traceback" not in result.output
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("target", "schema", "expected"),
    [
        (
            "  pass_fail: {correctness: [good, bad]}\n",
            TWO,
            "target.pass_fail.correctness is [good, bad]: rows with any other label",
        ),
        (
            "  values: {correctness: numeric}\n",
            TWO,
            "target.values.correctness is numeric, which takes scores",
        ),
    ],
    ids=["pass-fail-pair", "numeric"],
)
def test_other_value_kinds_that_contradict_the_labels(
    tmp_path: Path, target: str, schema: PlatformRule, expected: str
) -> None:
    path = write(tmp_path, target, labels="[x]")
    with pytest.raises(RulesConflict, match=expected.replace("[", r"\[").replace("]", r"\]")):
        pull(load_mapping(path), target=Schemas(schema))


@pytest.mark.parametrize(
    "target",
    [
        "  values: {correctness: categorical}\n",
        "",  # auto
        "  values: {correctness: pass_fail}\n  label_schemas: true\n",  # the schema decides
    ],
    ids=["categorical", "auto", "label-schemas"],
)
def test_a_pull_that_fits_the_value_kind_is_written(tmp_path: Path, target: str) -> None:
    path = write(tmp_path, target)
    result = pull(load_mapping(path), target=Schemas(THREE))
    assert [c.describe() for c in result.changes] == [
        "correctness: labels: [correct, incorrect] -> [correct, incorrect, partial]"
    ]
    assert load_mapping(path).annotations[0].rules.labels == ["correct", "incorrect", "partial"]
    assert "# ours" in path.read_text()


def test_a_pass_fail_with_two_labels_pulled_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path, "  values: {correctness: pass_fail}\n", labels="[a, b]")
    assert pull(load_mapping(path), target=Schemas(TWO)).changes


def _annotation(label: str) -> Annotation:
    return Annotation(
        row_index=0,
        name="correctness",
        kind="feedback",
        target_id="tr-6513270e269e0d37f2a74de452e6b438",
        label=label,
        score=None,
        explanation=None,
        annotator="ann",
        annotator_kind="HUMAN",
        identifier=identifier_for("ann"),
    )


def test_the_row_message_names_the_real_cause(tmp_path: Path) -> None:
    # the mapping as the old pull left it: pass_fail, and three labels
    path = write(
        tmp_path, "  values: {correctness: pass_fail}\n", labels="[correct, incorrect, partial]"
    )
    target: Any = registry.open_target(load_mapping(path))
    try:
        (problem,) = target.problems(_annotation("correct"))
    finally:
        target.close()
    assert problem.startswith(
        "label 'correct' is neither 'pass' (pass) nor 'fail' (fail) for 'correctness'; "
        "'correctness' is pass_fail (target.values) and the mapping names no pass and fail labels"
    )
    assert "target.pass_fail.correctness: [<pass label>, <fail label>]" in problem
    assert "target.values.correctness: categorical" in problem
    yaml.safe_load(path.read_text())  # (the mapping itself is fine YAML)
