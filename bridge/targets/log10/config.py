"""The ``target:`` section of a mapping for log10 feedback."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from bridge.configs import TargetConfigBase

LOG10_VALUE_SOURCES = ("label", "score", "explanation", "annotator")


class Log10Config(TargetConfigBase):
    """log10 feedback (experimental: the service shows no activity since January 2025).

    Credentials come from LOG10_TOKEN and LOG10_ORG_ID, never from the mapping.
    """

    type: Literal["log10"]
    ID_PATTERNS: ClassVar[dict[str, tuple[str, str]]] = {
        # completion ids are UUIDv4; a row may name several, separated by commas
        "completion": (
            r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
            r"(\s*,\s*[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})*$",
            "a lowercase UUID like 0b6e4b1c-2f43-4e7a-9d55-1a2b3c4d5e6f, or several separated "
            "by commas",
        ),
        # completion tags; a row may name several, separated by commas
        "tag": (r"^[^,]*[^,\s][^,]*(,[^,]*[^,\s][^,]*)*$", "one or more tags separated by commas"),
    }

    url: str | None = None  # default LOG10_URL, then https://log10.io
    task_id: str = Field(min_length=1)
    # what the id column holds: completion tags (comma separated) or completion ids (UUIDs)
    match: Literal["tags", "completion_ids"] = "tags"
    # task field -> label | score | explanation | annotator | column:<sheet column>
    json_values: dict[str, str] = Field(min_length=1)
    # log10 cannot update or delete feedback: an edited row is refused, or sent as new feedback
    on_edit: Literal["reject", "resend"] = "reject"
    max_matched_completions: int | None = Field(default=None, ge=1)
    page_size: int = Field(default=50, ge=1, le=1000)
    timeout: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> Log10Config:
        for key, source in self.json_values.items():
            if source in LOG10_VALUE_SOURCES:
                continue
            if source.startswith("column:") and source[len("column:") :].strip():
                continue
            raise ValueError(
                f"json_values.{key} is '{source}'; use label, score, explanation, annotator "
                "or column:<column name>"
            )
        return self

    def record_kind(self) -> str:
        return "tag" if self.match == "tags" else "completion"

    def extra_columns(self) -> list[str]:
        """Sheet columns this target reads besides the annotation's own."""
        cols = [
            s[len("column:") :].strip()
            for s in self.json_values.values()
            if s.startswith("column:")
        ]
        return list(dict.fromkeys(cols))
