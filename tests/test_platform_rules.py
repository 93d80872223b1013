"""Rules from the platform: conversion of each platform's configs, the comparison, and the
text edit of the mapping's rules blocks (comments and layout kept)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.errors import ConfigError
from bridge.mapping import load_mapping
from bridge.platform_rules import compare, edit_rules_text, pull
from bridge.records import PlatformRule
from bridge.targets.log10.rules import from_json_schema
from bridge.targets.mlflow.rules import from_mlflow_schema
from bridge.targets.phoenix.rules import from_phoenix_config

HEAD = """# labels of the support bot
source:
  type: excel
  path: labels.xlsx
target:
  type: phoenix
  url: http://127.0.0.1:9   # never contacted here
annotations:
"""
ENTRY = """  - name: correctness
    id_column: span_id
    label_column: label
    score_column: score
{rules}  - name: tone   # the second entry
    id_column: span_id
    label_column: tone
"""


class Rules:
    """A target stand-in that knows the platform's rules."""

    name = "stub"

    def __init__(self, *rules: PlatformRule) -> None:
        self.rules = {r.name: r for r in rules}
        self.asked: list[list[str]] = []

    def fetch_rules(self, names: list[str]) -> dict[str, PlatformRule]:
        self.asked.append(names)
        return {n: self.rules[n] for n in names if n in self.rules}

    def close(self) -> None:
        pass


def write(tmp_path: Path, rules: str, newline: str = "\n") -> Path:
    path = tmp_path / "m.yaml"
    text = HEAD + ENTRY.format(rules=rules)
    path.write_bytes(text.replace("\n", newline).encode())
    return path


CATEGORICAL = PlatformRule(
    "correctness", "Phoenix annotation config 'correctness'", {"labels": ["good", "okay", "bad"]}
)
CONTINUOUS = PlatformRule("correctness", "c", {"score_min": 1.0, "score_max": 5.0})


def pulled(tmp_path: Path, rules: str, *platform: PlatformRule, newline: str = "\n") -> str:
    path = write(tmp_path, rules, newline)
    result = pull(load_mapping(path), target=Rules(*platform))
    assert result.changes
    return path.read_bytes().decode()


# -- conversions ---------------------------------------------------------------------------


def test_phoenix_configs() -> None:
    cat = from_phoenix_config(
        {"name": "q", "type": "CATEGORICAL", "values": [{"label": "a", "score": 1}, {"label": "b"}]}
    )
    assert cat.values == {"labels": ["a", "b"]} and "CATEGORICAL" in cat.origin
    cont = from_phoenix_config(
        {"name": "h", "type": "CONTINUOUS", "lower_bound": 0, "upper_bound": None}
    )
    assert cont.values == {"score_min": 0.0, "score_max": None}
    assert from_phoenix_config({"name": "f", "type": "FREEFORM"}).values == {}


def test_mlflow_schemas() -> None:
    def schema(given: dict[str, Any]) -> dict[str, Any]:
        return from_mlflow_schema({"name": "s", "input": given}).values

    assert schema({"pass_fail": {"positive_label": "Yes", "negative_label": "No"}}) == {
        "labels": ["Yes", "No"]
    }
    assert schema({"categorical": {"options": ["a", "b"]}}) == {"labels": ["a", "b"]}
    assert schema({"categorical_list": {"options": ["x"]}}) == {"labels": ["x"]}
    assert schema({"numeric": {"min_value": 1, "max_value": 5}}) == {
        "score_min": 1.0,
        "score_max": 5.0,
    }
    assert schema({"text": {"max_length": 100}}) == {}


def test_log10_json_schema_through_json_values() -> None:
    schema = {
        "type": "object",
        "properties": {
            "verdict": {"type": "string", "enum": ["pass", "fail"]},
            "coverage": {"type": "integer", "minimum": 0, "maximum": 5},
            "note": {"type": "string"},
        },
    }
    rule = from_json_schema(
        "review", "task-1", schema, {"verdict": "label", "coverage": "score", "note": "explanation"}
    )
    assert rule.values == {"labels": ["pass", "fail"], "score_min": 0.0, "score_max": 5.0}
    assert "log10 feedback task 'task-1'" in rule.origin


# -- the text edit -------------------------------------------------------------------------


def test_flow_list_replaced_in_place_keeping_comments(tmp_path: Path) -> None:
    rules = (
        "    rules:   # from the style guide\n"
        "      labels: [correct, incorrect]  # two only\n"
        "      require: label\n"
    )
    text = pulled(tmp_path, rules, CATEGORICAL)
    assert text == HEAD + ENTRY.format(
        rules="    rules:   # from the style guide\n"
        "      labels: [good, okay, bad]  # two only\n"
        "      require: label\n"
    )


def test_block_list_becomes_a_flow_list(tmp_path: Path) -> None:
    rules = (
        "    rules:\n      labels:\n        - correct   # yes\n        - incorrect\n"
        "      score_min: 0\n"
    )
    text = pulled(tmp_path, rules, CATEGORICAL)
    assert "      labels: [good, okay, bad]\n      score_min: 0\n  - name: tone" in text


def test_missing_keys_are_added_and_open_bounds_removed(tmp_path: Path) -> None:
    rules = "    rules:\n      labels: [a, b]\n      score_max: 1   # old cap\n"
    text = pulled(
        tmp_path, rules, PlatformRule("correctness", "c", {"score_min": 0.5, "score_max": None})
    )
    assert "      labels: [a, b]\n      score_min: 0.5\n  - name: tone" in text
    assert "old cap" not in text


def test_a_rules_block_is_created_when_the_entry_has_none(tmp_path: Path) -> None:
    text = pulled(tmp_path, "", CONTINUOUS)
    assert (
        "    score_column: score\n    rules:\n      score_min: 1\n"
        "      score_max: 5\n  - name: tone" in text
    )


def test_flow_and_empty_rules(tmp_path: Path) -> None:
    text = pulled(tmp_path, "    rules: {labels: [x], require: label}\n", CATEGORICAL)
    assert "    rules: {labels: [good, okay, bad], require: label}\n" in text


def test_every_key_removed_leaves_an_empty_block(tmp_path: Path) -> None:
    text = pulled(
        tmp_path,
        "    rules:\n      labels: [a]\n",
        PlatformRule("correctness", "c", {"labels": None}),
    )
    assert "    rules: {}\n  - name: tone" in text


def test_windows_line_endings_are_kept(tmp_path: Path) -> None:
    text = pulled(tmp_path, "    rules:\n      labels: [a]\n", CATEGORICAL, newline="\r\n")
    assert "\r\n      labels: [good, okay, bad]\r\n" in text
    assert "\n" not in text.replace("\r\n", "")


def test_labels_yaml_would_misread_are_quoted(tmp_path: Path) -> None:
    path = write(tmp_path, "    rules:\n      labels: [a]\n")
    pull(
        load_mapping(path),
        target=Rules(PlatformRule("correctness", "c", {"labels": ["yes", "no", "1", "a: b"]})),
    )
    assert "labels: ['yes', 'no', '1', 'a: b']" in path.read_text()
    assert load_mapping(path).annotations[0].rules.labels == ["yes", "no", "1", "a: b"]


def test_flow_style_entries_are_refused_with_the_fix() -> None:
    text = HEAD + "  - {name: correctness, id_column: span_id, label_column: label}\n"
    from bridge.platform_rules import RuleChange

    with pytest.raises(ConfigError, match="flow style"):
        edit_rules_text(text, [RuleChange(0, "correctness", "labels", None, ["a"])])


# -- compare and pull ----------------------------------------------------------------------


def test_compare_reports_changes_missing_names_and_a_diff(tmp_path: Path) -> None:
    path = write(tmp_path, "    rules:\n      labels: [correct, incorrect]\n")
    target = Rules(CATEGORICAL)
    found = compare(load_mapping(path), target)
    assert target.asked == [["correctness", "tone"]]
    assert found.missing == ["tone"]
    assert [c.describe() for c in found.changes] == [
        "correctness: labels: [correct, incorrect] -> [good, okay, bad]"
    ]
    assert found.mapping.annotations[0].rules.labels == ["good", "okay", "bad"]
    assert "-      labels: [correct, incorrect]\n+      labels: [good, okay, bad]\n" in found.diff
    assert path.read_text() == HEAD + ENTRY.format(
        rules="    rules:\n      labels: [correct, incorrect]\n"
    )


def test_nothing_to_change_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "    rules:\n      labels: [good, okay, bad]\n")
    mtime = path.stat().st_mtime_ns
    result = pull(load_mapping(path), target=Rules(CATEGORICAL))
    assert result.changes == [] and result.diff == ""
    assert path.stat().st_mtime_ns == mtime


def test_dry_run_shows_the_diff_and_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "    rules:\n      labels: [a]\n")
    before = path.read_text()
    result = pull(load_mapping(path), dry_run=True, target=Rules(CATEGORICAL))
    assert "+      labels: [good, okay, bad]" in result.diff
    assert path.read_text() == before


def test_synonyms_that_point_outside_the_platform_labels_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '    rules:\n      labels: [correct, incorrect]\n      synonyms: {"yes": correct}\n',
    )
    with pytest.raises(ConfigError, match="synonyms map to 'correct', not in labels"):
        compare(load_mapping(path), Rules(CATEGORICAL))


def test_score_bounds_the_platform_has_in_the_wrong_order_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "    rules:\n      score_min: 0\n")
    with pytest.raises(ConfigError, match="score_min 5 is above score_max 1"):
        compare(
            load_mapping(path),
            Rules(PlatformRule("correctness", "c", {"score_min": 5, "score_max": 1})),
        )


def test_a_target_without_rules_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(ConfigError, match="cannot read rules from nothing"):
        compare(load_mapping(path), type("T", (), {"name": "nothing"})())


def test_pull_needs_a_mapping_file(tmp_path: Path) -> None:
    mapping = load_mapping(write(tmp_path, "")).model_copy(update={"path": None})
    with pytest.raises(ConfigError, match="edits a mapping file"):
        pull(mapping, target=Rules())


# -- log10, against the stand-in of its documented API -------------------------------------


def test_log10_task_schema_pulled_into_the_mapping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.log10_standin import Log10StandIn

    schema = {
        "type": "object",
        "properties": {
            "feedback": {"type": "string", "enum": ["😀", "🙁"]},
            "coverage": {"type": "integer", "minimum": 1, "maximum": 5},
        },
        "required": ["feedback"],
    }
    with Log10StandIn(token="log10-token-abc", org_id="org-1") as server:
        task_id = server.add_task("emoji", schema, ["tag"], "Use emojis")
        path = tmp_path / "m.yaml"
        path.write_text(
            "source:\n  type: excel\n  path: l.xlsx\n"
            f"target:\n  type: log10\n  url: {server.url}\n  task_id: {task_id}\n"
            "  json_values: {feedback: label, coverage: score}\n"
            "annotations:\n  - name: feedback\n    id_column: tags\n    label_column: label\n"
            "    score_column: score\n    rules:\n      labels: [good, bad]  # ours\n"
        )
        monkeypatch.setenv("LOG10_TOKEN", "log10-token-abc")
        monkeypatch.setenv("LOG10_ORG_ID", "org-1")
        result = pull(load_mapping(path))
    assert [c.describe() for c in result.changes] == [
        "feedback: labels: [good, bad] -> [😀, 🙁]",
        "feedback: score_min: (none) -> 1",
        "feedback: score_max: (none) -> 5",
    ]
    rules = load_mapping(path).annotations[0].rules
    assert (rules.labels, rules.score_min, rules.score_max) == (["😀", "🙁"], 1, 5)
    assert "# ours" in path.read_text()
