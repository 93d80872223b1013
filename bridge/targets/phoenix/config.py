"""The ``target:`` section of a mapping for Arize Phoenix."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from bridge.configs import OTEL_ID_PATTERNS, TargetConfigBase


class PhoenixConfig(TargetConfigBase):
    type: Literal["phoenix"]
    ID_PATTERNS: ClassVar[dict[str, tuple[str, str]]] = OTEL_ID_PATTERNS

    url: str | None = None
    # document: one annotation per retrieved document of a retriever span (the id column
    # holds the span id, document_position_column the document's 0-based position)
    annotate: Literal["span", "trace", "session", "document"] = "span"
    document_position_column: str | None = None
    project: str | None = None
    timeout: float = Field(default=30.0, gt=0)
    batch_size: int = Field(default=1000, ge=1, le=10_000)
    # At most this many annotations are queued on the server and not yet confirmed: Phoenix
    # merges queued requests into one statement, which SQLite and Postgres refuse past a few
    # thousand rows (docs/platform-notes.md, "Phoenix").
    max_unconfirmed: int = Field(default=2000, ge=1, le=10_000)
    confirm_timeout: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> PhoenixConfig:
        if self.annotate == "document" and not self.document_position_column:
            raise ValueError(
                "annotate is document, but there is no document_position_column; name the "
                "column that holds each document's position in the retriever span (0 for "
                "the first document)"
            )
        if self.document_position_column and self.annotate != "document":
            raise ValueError(
                f"document_position_column is set but annotate is {self.annotate}; set "
                "annotate: document, or remove document_position_column"
            )
        return self

    def record_kind(self) -> str:
        """What the id column holds: span, trace or session ids (a document's span id)."""
        return "span" if self.annotate == "document" else self.annotate

    def extra_columns(self) -> list[str]:
        return [self.document_position_column] if self.document_position_column else []

    def identity_columns(self) -> list[str]:
        return self.extra_columns()

    def notes_problem(self) -> str | None:
        return None
