"""The ``target:`` section of a mapping for an MLflow tracking server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from bridge.configs import TargetConfigBase
from bridge.records import PlatformRule, finite_number


class MlflowConfig(TargetConfigBase):
    """MLflow tracking server: assessments (feedback or expectations) on traces, over REST.

    Location and credentials come from MLflow's own variables (MLFLOW_TRACKING_URI,
    MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN), never from the mapping.
    """

    type: Literal["mlflow"]
    ID_PATTERNS: ClassVar[dict[str, tuple[str, str]]] = {
        # trace ids (tr- and 32 hex; traces logged by MLflow 2 have no prefix)
        "MLflow trace": (
            r"^(tr-)?[0-9a-f]{32}$",
            "tr- and 32 lowercase hex characters, like tr-6513270e269e0d37f2a74de452e6b438",
        ),
        # the app's own request id (client_request_id, at most 50 characters)
        "client request": (
            r"^\S(.{0,48}\S)?$",
            "a request id of at most 50 characters, without leading or trailing spaces",
        ),
    }

    url: str | None = None  # default MLFLOW_TRACKING_URI, then http://localhost:5000
    # experiment name or id; default MLFLOW_EXPERIMENT_NAME, then MLFLOW_EXPERIMENT_ID
    experiment: str | None = None
    # what the id column holds: MLflow trace ids (tr-...) or the app's client_request_id
    id_kind: Literal["trace_id", "client_request_id"] = "trace_id"
    # annotation name -> how its value is sent (default auto: the label as text, else the score)
    values: dict[
        str, Literal["auto", "pass_fail", "numeric", "categorical", "categorical_list", "text"]
    ] = Field(default_factory=dict)
    # annotation name -> [positive label, negative label] of a pass_fail value (True, False)
    pass_fail: dict[str, tuple[str, str]] = Field(default_factory=dict)
    # annotation names sent as expectations (ground truth); the others are feedback
    expectations: list[str] = Field(default_factory=list)
    # read the experiment's label schemas and check values against them before sending
    label_schemas: bool = False
    # the review queue whose items a sync marks COMPLETE (completed_by: the row's annotator)
    # once their rows are synced (see also: annobridge export --queue)
    review_queue: str | None = None
    # requests in flight at once (MLflow has no batch endpoint for assessments)
    # 16: the default server (4 workers) keeps each reused connection ~40 ms idle after a
    # request (docs/platform-notes.md, "MLflow"), so 8 in flight leave it waiting; 16 keep it busy
    concurrency: int = Field(default=16, ge=1, le=64)
    timeout: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> MlflowConfig:
        for name, (positive, negative) in self.pass_fail.items():
            if positive.strip().casefold() == negative.strip().casefold():
                raise ValueError(f"pass_fail.{name}: the two labels must differ")
            if self.values.get(name, "pass_fail") != "pass_fail":
                raise ValueError(
                    f"pass_fail.{name} is set but values.{name} is {self.values[name]}; "
                    f"set values.{name}: pass_fail or remove pass_fail.{name}"
                )
        return self

    def rule_conflicts(
        self, labels: Mapping[str, list[str] | None], rules: Mapping[str, PlatformRule]
    ) -> list[str]:
        """Rules that contradict ``values`` / ``pass_fail``; with ``label_schemas: true`` the
        label schema decides the value kind when sending, so nothing can contradict it."""
        kinds, pairs = self.values, self.pass_fail
        if self.label_schemas or not (kinds or pairs):
            return []
        found: list[str] = []
        for name, given in labels.items():
            rule = rules.get(name)
            if rule is None or "labels" not in rule.values or given is None:
                continue
            shown = ", ".join(given)
            kind = "pass_fail" if name in pairs else kinds.get(name, "auto")
            if kind == "pass_fail" and name in pairs:
                pair = pairs[name]
                if {x.casefold() for x in given} != {x.casefold() for x in pair}:
                    found.append(
                        f"{rule.origin} gives the labels {shown} for '{name}', but "
                        f"target.pass_fail.{name} is [{', '.join(pair)}]: rows with any other "
                        f"label would be invalid. Set target.pass_fail.{name} to two of the "
                        f"platform's labels, or remove it and set target.values.{name}: "
                        "categorical, then pull again"
                    )
            elif kind == "pass_fail" and len(given) != 2:
                found.append(
                    f"{rule.origin} gives {len(given)} labels for '{name}' ({shown}), but "
                    f"target.values.{name} is pass_fail, which takes two (pass first): every "
                    f"row would be invalid. Set target.values.{name}: categorical (or remove "
                    "it), or make the platform's schema pass/fail, then pull again"
                )
            elif kind == "numeric" and any(finite_number(x) is None for x in given):
                found.append(
                    f"{rule.origin} gives the labels {shown} for '{name}', but target.values."
                    f"{name} is numeric, which takes scores: every labelled row would be "
                    f"invalid. Set target.values.{name}: categorical (or remove it), then pull "
                    "again"
                )
        return found

    def notes_problem(self) -> str | None:
        return (
            "MLflow has no notes: an assessment has one rationale (map the column as "
            "explanation_column to send it there) and a trace tag holds one value per trace, "
            "not one per annotator; remove note_column"
        )

    def record_kind(self) -> str:
        """What the id column holds, in words (a key of ID_PATTERNS)."""
        return "MLflow trace" if self.id_kind == "trace_id" else "client request"
