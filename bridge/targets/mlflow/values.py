"""How an annotation becomes an MLflow assessment, with no I/O: the value rules (from the
mapping and the label schemas), the value of each label or score, the assessment body and
its id, and what a stored assessment differs in from the one sent."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.errors import MappingError
from bridge.mapping import AnnotationSpec
from bridge.records import Annotation
from bridge.targets.mlflow.config import MlflowConfig

# Column sizes of MLflow's assessments table (VARCHAR): longer values fail on Postgres/MySQL
# and pass on SQLite, so they are refused here for every backend.
MAX_NAME = 250
MAX_SOURCE_ID = 250
MAX_ASSESSMENT_ID = 50
DEFAULT_SOURCE_ID = "annobridge"
SOURCE_TYPES = {"HUMAN": "HUMAN", "LLM": "LLM_JUDGE", "CODE": "CODE"}


def assessment_id(trace_id: str, name: str, identifier: str) -> str:
    """The id annobridge gives an assessment: stable per trace, name and annotator.

    ``a-`` and 32 hex characters, like the ids MLflow makes (the column holds 50).
    """
    digest = hashlib.sha256(f"{trace_id}\x1f{name}\x1f{identifier}".encode()).hexdigest()
    return f"a-{digest[:32]}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class ValueRule:
    """How one annotation becomes an assessment: its kind, value type and allowed values."""

    kind: str = "feedback"  # feedback | expectation
    value: str = "auto"  # auto | pass_fail | numeric | categorical | categorical_list | text
    positive: str | None = None
    negative: str | None = None
    options: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    schema: str | None = None  # the MLflow label schema these rules came from

    def origin(self) -> str:
        return f" (MLflow label schema '{self.schema}')" if self.schema else ""


class NotSendable(ValueError):
    """An annotation MLflow would store wrongly or not at all; the message says the fix."""


def to_value(a: Annotation, rule: ValueRule) -> tuple[Any, dict[str, str]]:
    """The assessment value of an annotation, and metadata that keeps what the value cannot.

    :raises NotSendable: the label or score does not fit the value type or its limits.
    """
    extra: dict[str, str] = {}
    label, score = a.label, a.score
    kind = rule.value
    if kind == "auto":
        kind = "categorical" if label is not None else "numeric"
    if kind == "numeric":
        if score is None and label is not None:
            try:
                score = float(label)
            except ValueError:
                score = None
        elif label is not None:
            extra["label"] = label
        if score is None or not math.isfinite(score):
            raise NotSendable(f"'{a.name}' is numeric{rule.origin()}: give a score")
        if rule.minimum is not None and score < rule.minimum:
            raise NotSendable(
                f"score {_num(score)} is below the minimum {_num(rule.minimum)} of "
                f"'{a.name}'{rule.origin()}"
            )
        if rule.maximum is not None and score > rule.maximum:
            raise NotSendable(
                f"score {_num(score)} is above the maximum {_num(rule.maximum)} of "
                f"'{a.name}'{rule.origin()}"
            )
        return score, extra
    if kind == "pass_fail":
        if label is not None and score is not None:
            extra["score"] = _num(score)
        return _pass_fail(a, rule), extra
    if label is None:
        raise NotSendable(f"'{a.name}' needs a label{rule.origin()}")
    if score is not None:
        extra["score"] = _num(score)
    if kind == "categorical_list":
        return [_option(p, a.name, rule) for p in label.split(",") if p.strip()], extra
    if kind == "categorical":
        return _option(label, a.name, rule), extra
    if rule.max_length is not None and len(label) > rule.max_length:  # text
        raise NotSendable(
            f"label is {len(label):,} characters; '{a.name}' takes at most "
            f"{rule.max_length:,}{rule.origin()}"
        )
    return label, extra


def _pass_fail(a: Annotation, rule: ValueRule) -> bool:
    positive, negative = rule.positive or "pass", rule.negative or "fail"
    if a.label is None:
        if a.score in (0.0, 1.0):
            return a.score == 1.0
        raise NotSendable(
            f"'{a.name}' is pass/fail{rule.origin()}: give the label '{positive}' or "
            f"'{negative}' (or a score of 1 or 0)"
        )
    folded = a.label.strip().casefold()
    if folded not in (positive.casefold(), negative.casefold()):
        # no pass/fail labels given: say where 'pass' and 'fail' come from, and the fix
        why = (
            f"; '{a.name}' is pass_fail (target.values) and the mapping names no pass and fail "
            f"labels: set target.pass_fail.{a.name}: [<pass label>, <fail label>], give "
            f"rules.labels exactly two labels (pass first), or set target.values.{a.name}: "
            "categorical"
            if rule.positive is None and not rule.schema
            else ""
        )
        raise NotSendable(
            f"label '{a.label}' is neither '{positive}' (pass) nor '{negative}' (fail) for "
            f"'{a.name}'{rule.origin()}{why}"
        )
    return folded == positive.casefold()


def _option(text: str, name: str, rule: ValueRule) -> str:
    """The option a label names (matched without regard to case)."""
    text = text.strip()
    if rule.options is None:
        return text
    for option in rule.options:
        if option.casefold() == text.casefold():
            return option
    raise NotSendable(
        f"label '{text}' is not one of the options of '{name}'{rule.origin()}: "
        f"{', '.join(rule.options)}"
    )


def _same_value(sent: Any, stored: Any) -> bool:
    if isinstance(sent, bool) or isinstance(stored, bool):
        return sent is stored
    if isinstance(sent, int | float) and isinstance(stored, int | float):
        return math.isclose(float(sent), float(stored), rel_tol=1e-12, abs_tol=1e-12)
    return bool(sent == stored)


def differences(wanted: Mapping[str, Any], stored: Mapping[str, Any]) -> list[str]:
    """What of ``wanted`` the stored assessment does not hold (metadata may hold more)."""
    out: list[str] = []
    for key in ("assessment_name", "assessment_id"):
        if wanted.get(key) and wanted.get(key) != stored.get(key):
            out.append(key)
    kind = "expectation" if "expectation" in wanted else "feedback"
    if not isinstance(stored.get(kind), dict):
        out.append("kind")
    elif not _same_value(wanted[kind].get("value"), stored[kind].get("value")):
        out.append("value")
    if (wanted.get("rationale") or "") != (stored.get("rationale") or ""):
        out.append("rationale")
    if wanted.get("source") != stored.get("source"):
        out.append("source")
    held = stored.get("metadata") or {}
    if any(held.get(k) != v for k, v in (wanted.get("metadata") or {}).items()):
        out.append("metadata")
    return out


def assessment_body(
    a: Annotation, rule: ValueRule, id_kind: str, trace_id: str | None
) -> tuple[dict[str, Any], str | None]:
    """The assessment for one annotation (``trace_id`` None: not resolved yet), or why it
    cannot be sent as it is."""
    try:
        value, extra = to_value(a, rule)
    except NotSendable as exc:
        return {}, str(exc)
    source_type = SOURCE_TYPES.get(a.annotator_kind)
    if source_type is None:
        return {}, (
            f"annotator_kind '{a.annotator_kind}' is not one of HUMAN, LLM, CODE; MLflow "
            "would store it as UNSPECIFIED"
        )
    source_id = a.annotator or DEFAULT_SOURCE_ID
    if len(source_id) > MAX_SOURCE_ID:
        return {}, (
            f"annotator is {len(source_id):,} characters; MLflow keeps at most "
            f"{MAX_SOURCE_ID}: shorten it"
        )
    metadata = {str(k): str(v) for k, v in a.metadata.items() if v is not None}
    metadata.update(extra)
    if id_kind == "client_request_id":
        metadata["client_request_id"] = a.target_id
    body: dict[str, Any] = {
        "assessment_name": a.name,
        "source": {"source_type": source_type, "source_id": source_id},
    }
    if trace_id:
        body["assessment_id"] = assessment_id(trace_id, a.name, a.identifier)
        body["trace_id"] = trace_id
    if rule.kind == "expectation":
        body["expectation"] = {"value": value}
        if a.explanation:  # MLflow drops an expectation's rationale: keep it here
            metadata["rationale"] = a.explanation
    else:
        body["feedback"] = {"value": value}
        if a.explanation:
            body["rationale"] = a.explanation
    body["metadata"] = metadata
    return body, None


def config_rules(config: MlflowConfig, specs: Sequence[AnnotationSpec]) -> dict[str, ValueRule]:
    """The value rule of each annotation, from the mapping (before any label schema)."""
    labels = {s.name: s.rules.labels for s in specs}
    rules: dict[str, ValueRule] = {}
    for name in set(labels) | set(config.values) | set(config.expectations):
        value = config.values.get(name, "auto")
        if name in config.pass_fail:
            value = "pass_fail"
        positive = negative = None
        if value == "pass_fail":
            if name in config.pass_fail:
                positive, negative = config.pass_fail[name]
            elif labels.get(name) and len(labels[name] or []) == 2:
                positive, negative = (labels[name] or [])[0], (labels[name] or [])[1]
        rules[name] = ValueRule(
            kind="expectation" if name in config.expectations else "feedback",
            value=value,
            positive=positive,
            negative=negative,
        )
    return rules


def schema_rule(
    name: str,
    schema: Mapping[str, Any],
    configured: ValueRule,
    config: MlflowConfig,
    mapping_path: Path | str,
) -> ValueRule:
    """The value rule of ``name`` from its MLflow label schema, checked against the mapping
    (``configured``: the rule the mapping gives).

    :raises MappingError: the schema contradicts the mapping.
    """
    kind = "expectation" if schema.get("type") == "EXPECTATION" else "feedback"
    if name in config.expectations and kind != "expectation":
        raise MappingError(
            mapping_path,
            f"'{name}' is listed as an expectation, but its MLflow label schema is "
            "feedback; remove it from target.expectations",
            key="target.expectations",
        )
    given = schema.get("input") or {}
    if "pass_fail" in given:
        spec = given["pass_fail"]
        rule = ValueRule(
            kind,
            "pass_fail",
            positive=spec.get("positive_label"),
            negative=spec.get("negative_label"),
        )
    elif "categorical" in given:
        spec = given["categorical"]
        rule = ValueRule(
            kind,
            "categorical_list" if spec.get("multi_select") else "categorical",
            options=tuple(spec.get("options") or ()),
        )
    elif "numeric" in given:
        spec = given["numeric"]
        rule = ValueRule(
            kind, "numeric", minimum=spec.get("min_value"), maximum=spec.get("max_value")
        )
    else:
        spec = given.get("text") or {}
        rule = ValueRule(kind, "text", max_length=spec.get("max_length"))
    if configured.value not in ("auto", rule.value):
        raise MappingError(
            mapping_path,
            f"values.{name} is {configured.value}, but the MLflow label schema '{name}' "
            f"is {rule.value}; remove values.{name} or fix the schema",
            key=f"target.values.{name}",
        )
    return ValueRule(
        rule.kind,
        rule.value,
        rule.positive,
        rule.negative,
        rule.options,
        rule.minimum,
        rule.maximum,
        rule.max_length,
        schema=name,
    )
