"""The ``target:`` section of a mapping for Arize AX."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field, model_validator

from bridge.configs import OTEL_ID_PATTERNS, TargetConfigBase

# Keys that only one of Arize's two write APIs reads.
_ARIZE_GRAPHQL_ONLY = (
    "model_id",
    "environment",
    "input_shape",
    "annotation_config_ids",
    "mutations_per_request",
    "mutations_per_minute",
)
_ARIZE_REST_ONLY = ("project_id", "granularity", "end_time", "records_per_request")


class ArizeConfig(TargetConfigBase):
    """Arize AX: GraphQL ``updateAnnotations`` (the default) or REST ``/v2/spans/annotate``.

    The API key comes from ARIZE_API_KEY, never from the mapping.
    """

    type: Literal["arize"]
    ID_PATTERNS: ClassVar[dict[str, tuple[str, str]]] = {
        **OTEL_ID_PATTERNS,
        # a prediction id (model environments other than tracing)
        "record": (
            r"^\S(.{0,498}\S)?$",
            "a record (prediction) id without leading or trailing spaces",
        ),
    }

    api: Literal["graphql", "rest"] = "graphql"
    # default https://app.arize.com (GraphQL at /graphql) or https://api.arize.com (REST)
    url: str | None = None
    timeout: float = Field(default=30.0, gt=0)
    # GraphQL
    model_id: str | None = None
    environment: Literal["production", "validation", "training", "tracing"] = "tracing"
    # "annotations": the documented mutation (docs/platform-notes.md, "Arize");
    # "annotation_updates": the newer
    # input with annotationConfigId per annotation name
    input_shape: Literal["annotations", "annotation_updates"] = "annotations"
    annotation_config_ids: dict[str, str] = Field(default_factory=dict)
    mutations_per_request: int = Field(default=10, ge=1, le=50)
    # Arize allows 300 mutations a minute; the default leaves room for clock skew.
    mutations_per_minute: int = Field(default=250, ge=1, le=300)
    # Where Arize looks for each record: GraphQL startTime must be at most 24 h before the
    # record's start; REST looks between start_time and end_time (at most 31 days).
    start_time: AwareDatetime | None = None
    start_time_column: str | None = None
    start_time_margin_hours: float = Field(default=1.0, gt=0, le=24)
    # REST
    project_id: str | None = None
    granularity: Literal["span", "trace", "session"] = "span"
    end_time: AwareDatetime | None = None
    records_per_request: int = Field(default=1000, ge=1, le=1000)

    @model_validator(mode="after")
    def _check(self) -> ArizeConfig:
        other, foreign = (
            ("rest", _ARIZE_REST_ONLY)
            if self.api == "graphql"
            else ("graphql", _ARIZE_GRAPHQL_ONLY)
        )
        for key in foreign:
            if key in self.model_fields_set:
                raise ValueError(
                    f"{key} is read by api: {other} only; remove it or set api: {other}"
                )
        if self.start_time is not None and self.start_time_column:
            raise ValueError("give start_time or start_time_column, not both")
        if self.api == "graphql":
            if not self.model_id:
                raise ValueError(
                    "api: graphql needs model_id, the model's id as in its Arize URL "
                    "(e.g. TW9kZWw6MzExMjk3NjEwaweDpTZXdq)"
                )
            if self.input_shape == "annotations" and (
                self.start_time is None and not self.start_time_column
            ):
                raise ValueError(
                    "Arize's updateAnnotations needs a startTime at most 24 h before each "
                    "record's start: set start_time_column (a column with each record's start "
                    "time) or start_time (one time for all rows, e.g. 2024-11-15T00:00:00Z)"
                )
            if self.input_shape == "annotation_updates" and not self.annotation_config_ids:
                raise ValueError(
                    "input_shape annotation_updates needs annotation_config_ids, one "
                    "'annotation name: config id' per annotation"
                )
            return self
        if not self.project_id:
            raise ValueError("api: rest needs project_id, the Arize project of the spans")
        days = 7 if self.granularity == "session" else 31
        if self.start_time is not None and self.end_time is not None:
            if self.end_time <= self.start_time:
                raise ValueError("end_time must be after start_time")
            if (self.end_time - self.start_time).total_seconds() > days * 86400:
                raise ValueError(
                    f"Arize searches at most {days} days for {self.granularity} annotations; "
                    "bring start_time and end_time closer"
                )
        if self.granularity == "session" and self.records_per_request > 100:
            raise ValueError("Arize takes at most 100 session records per request")
        return self

    def record_kind(self) -> str:
        """What the id column holds: span, trace, session, or record (a prediction id)."""
        if self.api == "rest":
            return self.granularity
        return "span" if self.environment == "tracing" else "record"

    def extra_columns(self) -> list[str]:
        """Sheet columns this target reads besides the annotation's own."""
        return [self.start_time_column] if self.start_time_column else []
