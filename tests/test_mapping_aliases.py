"""YAML aliases in a mapping: the useful ones work, an alias bomb is refused unexpanded.

A few lines of nested anchors ("billion laughs") expand to billions of strings; expanding
them in ``rules.labels`` took ~100 s of CPU before the mapping was refused (issue 16, item 5).
The loader counts each node's expanded size on the composed node graph, where an alias is
one shared node, and refuses past ``MAX_MAPPING_NODES`` before constructing anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.errors import MappingError
from bridge.mapping import MAX_MAPPING_NODES, load_mapping

HEAD = """\
source: {type: csv, path: labels.csv}
target: {type: phoenix, url: "http://127.0.0.1:9"}
"""


def laughs(levels: int = 9, fanout: int = 10) -> str:
    """Anchors a, b, c... each a list of ``fanout`` of the one before: fanout**levels strings."""
    lines = ["    rules:", "      labels:", '        - &l0 ["lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, levels):
        lines.append(f"        - &l{n} [{', '.join([f'*l{n - 1}'] * fanout)}]")
    return "\n".join(lines)


def bomb_in_labels() -> str:
    return (
        HEAD
        + "annotations:\n  - name: c\n    id_column: span_id\n    label_column: label\n"
        + (laughs() + "\n")
    )


@pytest.fixture
def constructed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many YAML nodes the loader turned into Python objects."""
    count = [0]
    original = yaml.constructor.BaseConstructor.construct_object

    def counting(self: Any, node: Any, deep: bool = False) -> Any:
        count[0] += 1
        return original(self, node, deep)

    monkeypatch.setattr(yaml.constructor.BaseConstructor, "construct_object", counting)
    return count


def test_a_billion_laughs_in_rules_labels_is_refused_naming_the_key_unexpanded(
    tmp_path: Path, constructed: list[int]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(bomb_in_labels())
    with pytest.raises(MappingError) as err:
        load_mapping(path)
    assert err.value.key == "annotations[0].rules.labels"
    assert f"expand to more than {MAX_MAPPING_NODES:,} values" in str(err.value)
    assert constructed[0] == 0  # refused before a single node became a Python object


def test_a_bomb_in_a_section_of_its_own_names_the_key_that_uses_it(tmp_path: Path) -> None:
    anchors = ['x0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, 9):
        anchors.append(f"x{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 8)}]")
    text = (
        "\n".join(anchors)
        + "\n"
        + HEAD
        + (
            "annotations:\n  - {name: c, id_column: span_id, label_column: label,\n"
            "     rules: {labels: *a8}}\n"
        )
    )
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(MappingError) as err:
        load_mapping(path)
    assert err.value.key == "annotations[0].rules.labels"  # the use, not the anchor


def test_an_alias_that_refers_to_itself_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + "annotations: &loop [*loop]\n")
    with pytest.raises(MappingError, match="refers to itself"):
        load_mapping(path)


def test_merge_keys_and_aliases_inside_known_keys(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        HEAD
        + """\
annotations:
  - name: a
    id_column: span_id
    label_column: label
    rules: &rules {labels: [correct, incorrect], score_min: 0, score_max: 1}
  - name: b
    id_column: span_id
    score_column: score
    rules: {<<: *rules, score_max: 5}
"""
    )
    a, b = load_mapping(path).annotations
    assert a.rules.labels == b.rules.labels == ["correct", "incorrect"]
    assert (a.rules.score_max, b.rules.score_max, b.rules.score_min) == (1, 5, 0)


def test_a_large_but_plain_label_list_is_fine(tmp_path: Path) -> None:
    labels = ", ".join(f"l{i}" for i in range(5000))
    path = tmp_path / "m.yaml"
    path.write_text(
        HEAD + "annotations:\n  - name: c\n    id_column: span_id\n    label_column: label\n"
        f"    rules: {{labels: [{labels}]}}\n"
    )
    assert len(load_mapping(path).annotations[0].rules.labels or []) == 5000
