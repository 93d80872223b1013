"""Rules from the platform: the annotation configs the platform itself keeps, as mapping rules.

- Phoenix annotation configs: CATEGORICAL -> ``labels`` (the values' labels); CONTINUOUS ->
  ``score_min`` / ``score_max`` (its bounds; an open bound removes the key); FREEFORM -> no
  label or score rule (free text).
- MLflow label schemas: pass_fail -> ``labels: [positive, negative]``; categorical (and
  categorical_list) -> ``labels`` (the options); numeric -> ``score_min`` / ``score_max``;
  text -> no label or score rule.
- log10: the feedback task's JSON schema, through ``json_values``: the field fed by the label
  -> ``labels`` (its ``enum``); the field fed by the score -> ``score_min`` / ``score_max``
  (its ``minimum`` / ``maximum``).

Only the keys the platform decides are touched; synonyms, ``require``, case sensitivity and
lengths stay the mapping's own, except that synonyms are removed when the platform gives no
label list for them to map to.

``rules pull`` writes the result into the mapping file by a careful text edit of each
annotation entry's ``rules:`` block (ruamel is not a dependency): only the lines of the keys
that change are rewritten, in the block's own indentation; comments on other lines, the
order of keys and the rest of the file stay as they are (a comment at the end of a rewritten
line is kept; one on a removed line goes with it). The edited text is parsed and checked
before it replaces the file, atomically; if it would not load to exactly the platform's
rules, nothing is written and the error says so.
"""

from __future__ import annotations

import difflib
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bridge.errors import ConfigError, MappingError, RulesConflict
from bridge.mapping import AnnotationSpec, MappingConfig, Rules, UniqueKeyLoader, parse_mapping
from bridge.records import PlatformRule
from bridge.registry import open_target
from bridge.targets.base import PullsRules, Target

RULE_KEYS = ("labels", "score_min", "score_max")


@dataclass(frozen=True)
class RuleChange:
    index: int  # the annotation entry
    name: str
    key: str
    old: Any
    new: Any

    def describe(self) -> str:
        return f"{self.name}: {self.key}: {_show(self.old)} -> {_show(self.new)}"


@dataclass
class PlatformRules:
    """The platform's rules compared with the mapping's."""

    mapping: MappingConfig  # the mapping with the platform's rules in it
    rules: dict[str, PlatformRule]
    changes: list[RuleChange]
    missing: list[str]  # annotation names the platform has no config for
    diff: str = ""  # unified diff of the mapping file, when it has one

    def to_json(self) -> dict[str, Any]:
        return {
            "changes": [
                {"annotation": c.name, "key": c.key, "mapping": c.old, "platform": c.new}
                for c in self.changes
            ],
            "missing": self.missing,
            "origins": {n: r.origin for n, r in self.rules.items()},
            "diff": self.diff,
        }


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    return _render(value)


# -- comparing and applying -------------------------------------------------------------------


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)
    return bool(a == b)


def _merged_rules(spec: AnnotationSpec, rule: PlatformRule, where: str) -> Rules:
    data = spec.rules.model_dump()
    data.update({k: v for k, v in rule.values.items() if k in RULE_KEYS})
    if data.get("labels") is None and spec.rules.synonyms:
        data["synonyms"] = {}  # a label list is gone: synonyms map to nothing
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"{where}: the rules of '{spec.name}' from {rule.origin} do not fit the rest of "
            f"its rules in the mapping: {reason}"
        ) from None


def fetch(target: Target, names: Sequence[str]) -> dict[str, PlatformRule]:
    if not isinstance(target, PullsRules):
        raise ConfigError(
            f"annobridge cannot read rules from {target.name}: it reads Phoenix annotation "
            "configs, MLflow label schemas and log10 feedback tasks"
        )
    return target.fetch_rules(list(names))


def compare(
    mapping: MappingConfig, target: Any = None, rules: dict[str, PlatformRule] | None = None
) -> PlatformRules:
    """The mapping with the platform's rules in it, what changes, and the diff of the file.

    :param target: where to read the rules (the mapping's target when None and no ``rules``).
    :param rules: the platform's rules, already read.
    """
    names = list(dict.fromkeys(a.name for a in mapping.annotations))
    if rules is None:
        own = target is None
        if own:
            target = open_target(mapping)
        try:
            rules = fetch(target, names)
        finally:
            if own:
                target.close()
    where = str(mapping.path or "the mapping")
    changes: list[RuleChange] = []
    specs: list[AnnotationSpec] = []
    for i, spec in enumerate(mapping.annotations):
        rule = rules.get(spec.name)
        if rule is None:
            specs.append(spec)
            continue
        merged = _merged_rules(spec, rule, where)
        for key in RULE_KEYS:
            old, new = getattr(spec.rules, key), getattr(merged, key)
            if key in rule.values and not _equal(old, new):
                changes.append(RuleChange(i, spec.name, key, old, new))
        if spec.rules.synonyms and not merged.synonyms:
            changes.append(RuleChange(i, spec.name, "synonyms", spec.rules.synonyms, None))
        specs.append(spec.model_copy(update={"rules": merged}))
    updated = mapping.model_copy(update={"annotations": specs})
    conflicts = _conflicts(updated, rules)
    if conflicts:
        raise RulesConflict(
            f"{where}: the platform's rules conflict with the mapping, which was left as it "
            f"was: {'; '.join(conflicts)}"
        )
    missing = [n for n in names if n not in rules]
    result = PlatformRules(updated, rules, changes, missing)
    if changes and mapping.path is not None and Path(mapping.path).is_file():
        old_text = Path(mapping.path).read_bytes().decode("utf-8")
        try:
            new_text = edit_rules_text(old_text, changes)
        except ConfigError:
            new_text = None
        if new_text is not None:
            result.diff = unified_diff(old_text, new_text, str(mapping.path))
    return result


def _conflicts(mapping: MappingConfig, rules: Mapping[str, PlatformRule]) -> list[str]:
    """Where the platform's rules, merged in, contradict the mapping's own target settings
    (the target config knows: see ``TargetConfigBase.rule_conflicts``)."""
    labels = {a.name: a.rules.labels for a in mapping.annotations}
    return mapping.target.rule_conflicts(labels, rules)


def unified_diff(old: str, new: str, path: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{path} (mapping)",
            tofile=f"{path} (platform)",
        )
    )


def pull(mapping: MappingConfig, *, dry_run: bool = False, target: Any = None) -> PlatformRules:
    """Write the platform's rules into the mapping file (unless ``dry_run``).

    :raises ConfigError: the mapping has no file, or its rules cannot be edited in place.
    """
    if mapping.path is None or not Path(mapping.path).is_file():
        raise ConfigError("rules pull edits a mapping file; load the mapping from its file")
    result = compare(mapping, target)
    if not result.changes:
        return result
    path = Path(mapping.path)
    old_text = path.read_bytes().decode("utf-8")
    new_text = edit_rules_text(old_text, result.changes)
    _check_edit(new_text, path, result.mapping)
    result.diff = unified_diff(old_text, new_text, str(path))
    if not dry_run:
        _replace(path, new_text)
    return result


def _check_edit(text: str, path: Path, expected: MappingConfig) -> None:
    """The edited file must load, and hold exactly the expected rules."""
    try:
        edited = parse_mapping(yaml.load(text, Loader=UniqueKeyLoader), path)
    except (yaml.YAMLError, MappingError) as exc:  # pragma: no cover - the editor's own bug
        raise ConfigError(
            f"{path}: the edited rules would not load ({exc}); the mapping is unchanged: "
            "set the rules by hand"
        ) from None
    for got, want in zip(edited.annotations, expected.annotations, strict=True):
        if got.rules != want.rules:  # pragma: no cover - the editor's own bug
            raise ConfigError(
                f"{path}: the rules of '{want.name}' could not be edited in place; the mapping "
                f"is unchanged: set them by hand to {want.rules.model_dump(exclude_defaults=True)}"
            )


def _replace(path: Path, text: str) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the mapping ({exc.strerror})") from exc
    finally:
        tmp.unlink(missing_ok=True)


# -- the text edit ----------------------------------------------------------------------------


def _render(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = yaml.safe_dump(
        value, default_flow_style=True, allow_unicode=True, width=10**9, sort_keys=False
    )
    return text.strip().removesuffix("...").strip()


def _get(node: MappingNode, key: str) -> tuple[Node, Node] | None:
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return k, v
    return None


def _end(node: Node) -> int:
    """Where a node's text ends (block collections end with their last item)."""
    if isinstance(node, MappingNode | SequenceNode) and not node.flow_style and node.value:
        last = node.value[-1]
        return _end(last[1] if isinstance(node, MappingNode) else last)
    return int(node.end_mark.index)


def _line_end(text: str, index: int) -> int:
    """Index of the newline ending the line that holds ``index`` (or the end of the text)."""
    end = text.find("\n", index)
    return len(text) if end < 0 else end


def edit_rules_text(text: str, changes: Sequence[RuleChange]) -> str:
    """The mapping text with each change made in its annotation's ``rules:`` block."""
    crlf = "\r\n" in text
    text = text.replace("\r\n", "\n")
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    entries = _get(root, "annotations") if isinstance(root, MappingNode) else None
    if entries is None or not isinstance(entries[1], SequenceNode):
        raise ConfigError("the mapping has no annotations list to edit")
    by_entry: dict[int, dict[str, Any]] = {}
    for c in changes:
        by_entry.setdefault(c.index, {})[c.key] = c.new
    edits: list[tuple[int, int, str]] = []
    for index, wanted in by_entry.items():
        entry = entries[1].value[index]
        if not isinstance(entry, MappingNode) or entry.flow_style:
            raise ConfigError(
                f"annotations[{index}] is written in flow style ({{...}}); write it as a block "
                "to let rules pull edit it"
            )
        edits.extend(_edit_entry(text, entry, wanted))
    for start, end, replacement in sorted(edits, key=lambda e: e[0], reverse=True):
        text = text[:start] + replacement + text[end:]
    return text.replace("\n", "\r\n") if crlf else text


def _edit_entry(
    text: str, entry: MappingNode, wanted: dict[str, Any]
) -> list[tuple[int, int, str]]:
    found = _get(entry, "rules")
    if found is None:  # no rules yet: a new block after the entry's last line
        indent = " " * entry.value[0][0].start_mark.column
        lines = [f"{indent}rules:"] + [
            f"{indent}  {k}: {_render(v)}" for k, v in wanted.items() if v is not None
        ]
        at = _line_end(text, _end(entry))
        return [(at, at, "\n" + "\n".join(lines))] if len(lines) > 1 else []
    key_node, rules = found
    if not isinstance(rules, MappingNode):  # pragma: no cover - such a mapping does not load
        raise ConfigError("rules is not a mapping")
    if rules.flow_style or not rules.value:  # {..}: rewritten as a whole, in flow style
        current = yaml.safe_load(text[rules.start_mark.index : rules.end_mark.index]) or {}
        for k, v in wanted.items():
            if v is None:
                current.pop(k, None)
            else:
                current[k] = v
        return [(rules.start_mark.index, rules.end_mark.index, _render(current))]
    edits: list[tuple[int, int, str]] = []
    indent = " " * rules.value[0][0].start_mark.column
    present = {str(k.value) for k, _ in rules.value if isinstance(k, ScalarNode)}
    removed = {k for k, v in wanted.items() if v is None and k in present}
    if removed and removed == present:  # every key goes: the block becomes {}
        return [(text.index(":", key_node.end_mark.index) + 1, _end(rules), " {}")]
    added: list[str] = []
    for k, v in wanted.items():
        hit = _get(rules, k)
        if hit is None:
            if v is not None:
                added.append(f"{indent}{k}: {_render(v)}")
            continue
        k_node, v_node = hit
        if v is None:
            start = text.rfind("\n", 0, k_node.start_mark.index) + 1
            end = _line_end(text, _end(v_node))
            edits.append((start, min(end + 1, len(text)), ""))
        else:
            edits.append((k_node.start_mark.index, _end(v_node), f"{k}: {_render(v)}"))
    if added:
        at = _line_end(text, _end(rules))
        edits.append((at, at, "\n" + "\n".join(added)))
    return edits
