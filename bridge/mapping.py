"""The mapping file: YAML -> typed, validated models.

Paths in a mapping are relative to the mapping file; ``${VAR}`` and ``${VAR:-default}``
expand from the environment. Secrets never live in a mapping: they come from the
platforms' own environment variables.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bridge.errors import MappingError
from bridge.records import StatusColumns

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

# Keys that would put a secret into a file that gets committed and shared.
_SECRET_KEYS = {
    "api_key": "PHOENIX_API_KEY / ARIZE_API_KEY / LOG10_TOKEN",
    "apikey": "PHOENIX_API_KEY / ARIZE_API_KEY / LOG10_TOKEN",
    "token": "the platform's token variable, e.g. MLFLOW_TRACKING_TOKEN or LOG10_TOKEN",
    "password": "MLFLOW_TRACKING_PASSWORD",
    "secret": "the platform's own environment variable",
    "headers": "PHOENIX_CLIENT_HEADERS",
}

RequireMode = Literal["label", "score", "label_or_score", "label_and_score"]
AnnotatorKind = Literal["HUMAN", "LLM", "CODE"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rules(_Model):
    labels: list[str] | None = None
    case_sensitive: bool = False
    synonyms: dict[str, str] = Field(default_factory=dict)
    score_min: float | None = None
    score_max: float | None = None
    require: RequireMode = "label_or_score"
    max_explanation_length: int = Field(default=10_000, gt=0)
    max_label_length: int = Field(default=200, gt=0)

    @model_validator(mode="after")
    def _check(self) -> Rules:
        if (
            self.score_min is not None
            and self.score_max is not None
            and self.score_min > self.score_max
        ):
            raise ValueError(f"score_min {self.score_min} is above score_max {self.score_max}")
        if self.labels is not None:
            if not self.labels:
                raise ValueError("labels is empty; list the allowed labels or remove the key")
            unknown = sorted({v for v in self.synonyms.values() if v not in self.labels})
            if unknown:
                raise ValueError(f"synonyms map to labels not in labels: {unknown}")
        return self


class AnnotationSpec(_Model):
    name: str = Field(min_length=1)
    id_column: str
    label_column: str | None = None
    score_column: str | None = None
    explanation_column: str | None = None
    annotator_column: str | None = None
    annotator_kind: AnnotatorKind = "HUMAN"
    annotator: str | None = None
    rules: Rules = Field(default_factory=Rules)

    @model_validator(mode="after")
    def _check(self) -> AnnotationSpec:
        if not (self.label_column or self.score_column or self.explanation_column):
            raise ValueError("give at least one of label_column, score_column, explanation_column")
        if self.name == "note":
            raise ValueError("'note' is reserved by Phoenix for span notes; choose another name")
        return self

    def used_columns(self) -> list[str]:
        cols = [
            self.id_column,
            self.label_column,
            self.score_column,
            self.explanation_column,
            self.annotator_column,
        ]
        return [c for c in cols if c]


class ExcelSource(_Model):
    type: Literal["excel"]
    path: Path
    worksheet: str | None = None
    header_row: int = Field(default=1, ge=1)


class CsvSource(_Model):
    type: Literal["csv"]
    path: Path
    header_row: int = Field(default=1, ge=1)
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8-sig"


class GSheetSource(_Model):
    type: Literal["gsheet"]
    spreadsheet: str
    worksheet: str | None = None
    header_row: int = Field(default=1, ge=1)
    credentials: Path | None = None


SourceConfig = Annotated[ExcelSource | CsvSource | GSheetSource, Field(discriminator="type")]


class PhoenixTarget(_Model):
    type: Literal["phoenix"]
    url: str | None = None
    annotate: Literal["span", "trace", "session"] = "span"
    project: str | None = None
    timeout: float = Field(default=30.0, gt=0)
    batch_size: int = Field(default=1000, ge=1, le=10_000)
    # At most this many annotations are queued on the server and not yet confirmed: Phoenix
    # merges queued requests into one statement, which SQLite and Postgres refuse past a few
    # thousand rows (reference/phoenix.md, "Gotchas").
    max_unconfirmed: int = Field(default=2000, ge=1, le=10_000)
    confirm_timeout: float = Field(default=30.0, gt=0)


TargetConfig = Annotated[PhoenixTarget, Field(discriminator="type")]

# type -> config model, for "did you mean" hints on unknown keys
SOURCE_MODELS: dict[str, type[BaseModel]] = {
    "excel": ExcelSource,
    "csv": CsvSource,
    "gsheet": GSheetSource,
}
TARGET_MODELS: dict[str, type[BaseModel]] = {"phoenix": PhoenixTarget}


class StatusConfig(_Model):
    status_column: str = "sync_status"
    synced_at_column: str = "synced_at"
    message_column: str = "sync_message"
    id_column: str = "sync_id"
    hash_column: str = "sync_hash"

    def columns(self) -> StatusColumns:
        return StatusColumns(
            status=self.status_column,
            synced_at=self.synced_at_column,
            message=self.message_column,
            remote_id=self.id_column,
            hash=self.hash_column,
        )


class Mapping(_Model):
    source: SourceConfig
    target: TargetConfig
    annotations: list[AnnotationSpec] = Field(min_length=1)
    status: StatusConfig = Field(default_factory=StatusConfig)
    path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _check(self) -> Mapping:
        names = [(a.name, a.id_column, a.annotator_column) for a in self.annotations]
        if len(set(names)) != len(names):
            raise ValueError("two annotations share name, id_column and annotator_column")
        status_cols = set(self.status.columns().names())
        for a in self.annotations:
            clash = status_cols.intersection(a.used_columns())
            if clash:
                raise ValueError(
                    f"annotation '{a.name}' reads the status column {sorted(clash)}; "
                    "status columns are written by annobridge"
                )
        return self

    def key_columns(self) -> list[str]:
        """Columns whose values identify a row again at write-back time."""
        cols: list[str] = []
        for a in self.annotations:
            for c in (a.id_column, a.annotator_column):
                if c and c not in cols:
                    cols.append(c)
        return cols


def expand_env(text: str, environ: dict[str, str] | None = None) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}``; an unset variable with no default is an error."""
    env = os.environ if environ is None else environ

    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise KeyError(name)
            return default
        return value

    return _ENV_REF.sub(repl, text)


def _expand_tree(node: Any, path: Path, where: str = "") -> Any:
    if isinstance(node, dict):
        return {
            k: _expand_tree(v, path, f"{where}.{k}" if where else str(k)) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_expand_tree(v, path, f"{where}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):
        try:
            return expand_env(node)
        except KeyError as exc:
            raise MappingError(
                path,
                f"environment variable {exc.args[0]} is not set; set it, or write "
                f"${{{exc.args[0]}:-default}} to give a default",
                key=where,
            ) from None
    return node


def _known_keys(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _model_at(loc: tuple[int | str, ...], raw: Any) -> Any:
    """The pydantic model that owns the key at ``loc`` (for 'did you mean')."""
    model: Any = Mapping
    node = raw
    for part in loc[:-1]:
        if model is None:
            return None
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        field = model.model_fields.get(str(part))
        node = node.get(part) if isinstance(node, dict) else None
        if part == "source":
            kind = node.get("type") if isinstance(node, dict) else None
            model = {"excel": ExcelSource, "csv": CsvSource, "gsheet": GSheetSource}.get(str(kind))
        elif part == "target":
            model = PhoenixTarget
        elif field is not None and part == "annotations":
            model = AnnotationSpec
        elif part == "rules":
            model = Rules
        elif part == "status":
            model = StatusConfig
        elif part in SOURCE_MODELS or part in TARGET_MODELS:
            continue
        else:
            return None
    return model


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in SOURCE_MODELS or part in TARGET_MODELS:
            continue  # pydantic's discriminator tag, not a key the user wrote
        else:
            out += f".{part}" if out else str(part)
    return out


def _explain(exc: ValidationError, path: Path, raw: Any) -> MappingError:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    key = _format_loc(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        name = str(loc[-1])
        if name.lower() in _SECRET_KEYS:
            return MappingError(
                path,
                f"secrets do not belong in a mapping file; remove '{name}' and set "
                f"{_SECRET_KEYS[name.lower()]} in the environment instead",
                key=key,
            )
        model = _model_at(loc, raw)
        hint = ""
        if model is not None:
            close = difflib.get_close_matches(name, _known_keys(model), n=1, cutoff=0.5)
            hint = (
                f"; did you mean '{close[0]}'?"
                if close
                else f"; known keys: {', '.join(_known_keys(model))}"
            )
        return MappingError(path, f"unknown key '{name}'{hint}", key=key)
    if kind == "missing":
        return MappingError(path, "this key is required", key=key)
    if kind == "union_tag_invalid" or kind == "literal_error":
        return MappingError(path, err["msg"], key=key)
    if "synonyms" in loc and kind == "string_type":
        return MappingError(
            path,
            "synonym keys and values must be text; YAML reads yes/no/on/off/true/false and "
            "numbers unquoted as other types, so quote them: \"yes\": correct",
            key=key.replace(".[key]", ""),
        )
    msg = err["msg"].removeprefix("Value error, ")
    return MappingError(path, msg, key=key or None)


def parse_mapping(data: Any, path: Path) -> Mapping:
    """Validate an already-parsed mapping document (a dict) read from ``path``."""
    if not isinstance(data, dict):
        raise MappingError(path, "the file must be a YAML mapping with source, target, annotations")
    data = _expand_tree(data, path)
    for section in ("source", "target"):
        node = data.get(section)
        if isinstance(node, dict) and "type" not in node:
            raise MappingError(path, "this key is required", key=f"{section}.type")
    try:
        mapping = Mapping.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, path, data) from None
    base = path.parent
    source = mapping.source
    if isinstance(source, ExcelSource | CsvSource) and not source.path.is_absolute():
        source = source.model_copy(update={"path": (base / source.path)})
    if (
        isinstance(source, GSheetSource)
        and source.credentials
        and not source.credentials.is_absolute()
    ):
        source = source.model_copy(update={"credentials": base / source.credentials})
    return mapping.model_copy(update={"source": source, "path": path})


def load_mapping(path: str | os.PathLike[str]) -> Mapping:
    """Read, expand and validate a mapping file.

    :param path: the YAML file; relative paths inside it are relative to it.
    :raises MappingError: with the file, the key and the fix.
    """
    p = Path(path)
    if not p.exists():
        raise MappingError(p, "no such file; create one with 'annobridge init'")
    if p.is_dir():
        raise MappingError(p, "is a folder; give the mapping file (.yaml) inside it")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(p, f"cannot read the file ({exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise MappingError(p, f"not valid YAML{where}: {problem}") from None
    return parse_mapping(data, p)
