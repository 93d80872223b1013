"""The mapping file: YAML -> typed, validated models.

Paths in a mapping are relative to the mapping file; ``${VAR}`` and ``${VAR:-default}``
expand from the environment. Secrets never live in a mapping: they come from the
platforms' own environment variables.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, create_model, model_validator

from bridge.configs import StrictModel
from bridge.errors import MappingError
from bridge.plugins import source_plugin, target_plugin
from bridge.records import StatusColumns
from bridge.sources.csv.config import CsvConfig
from bridge.sources.excel.config import ExcelConfig
from bridge.sources.gsheets.config import GSheetConfig
from bridge.targets.arize.config import ArizeConfig
from bridge.targets.log10.config import Log10Config
from bridge.targets.mlflow.config import MlflowConfig
from bridge.targets.phoenix.config import PhoenixConfig

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


class Rules(StrictModel):
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
            raise ValueError(
                f"score_min {_number(self.score_min)} is above score_max "
                f"{_number(self.score_max)}; swap them or fix one of them"
            )
        if self.labels is not None:
            if not self.labels:
                raise ValueError("labels is empty; list the allowed labels or remove the key")
            unknown = sorted({v for v in self.synonyms.values() if v not in self.labels})
            if unknown:
                shown = ", ".join(f"'{u}'" for u in unknown)
                raise ValueError(
                    f"synonyms map to {shown}, not in labels; add "
                    f"{'it' if len(unknown) == 1 else 'them'} to labels or fix the synonyms"
                )
        return self


def _number(value: float) -> str:
    """2.0 -> '2', 0.5 -> '0.5': numbers as the user wrote them."""
    return str(int(value)) if value.is_integer() else str(value)


class AnnotationSpec(StrictModel):
    name: str = Field(min_length=1)
    id_column: str
    label_column: str | None = None
    score_column: str | None = None
    explanation_column: str | None = None
    annotator_column: str | None = None
    # Phoenix: the cell is sent as a note on the same record, beside the annotation
    note_column: str | None = None
    annotator_kind: AnnotatorKind = "HUMAN"
    annotator: str | None = None
    rules: Rules = Field(default_factory=Rules)

    @model_validator(mode="after")
    def _check(self) -> AnnotationSpec:
        if not (self.label_column or self.score_column or self.explanation_column):
            raise ValueError("give at least one of label_column, score_column, explanation_column")
        if self.name == "note":
            raise ValueError("'note' is reserved by Phoenix for span notes; choose another name")
        require = self.rules.require
        needs = {
            "label": ["label_column"] if not self.label_column else [],
            "score": ["score_column"] if not self.score_column else [],
            "label_and_score": [
                c
                for c, v in (
                    ("label_column", self.label_column),
                    ("score_column", self.score_column),
                )
                if not v
            ],
            "label_or_score": (
                [] if self.label_column or self.score_column else ["label_column or score_column"]
            ),
        }[require]
        if needs:
            raise ValueError(
                f"rules.require is {require}, but there is no {' or '.join(needs)}; add "
                f"{' and '.join(needs)} or change rules.require, or every row would be invalid"
            )
        return self

    def used_columns(self) -> list[str]:
        cols = [
            self.id_column,
            self.label_column,
            self.score_column,
            self.explanation_column,
            self.annotator_column,
            self.note_column,
        ]
        return [c for c in cols if c]


# One line per medium and per platform: the config model sits beside its adapter.
SourceConfig = Annotated[ExcelConfig | CsvConfig | GSheetConfig, Field(discriminator="type")]
TargetConfig = Annotated[
    PhoenixConfig | ArizeConfig | Log10Config | MlflowConfig, Field(discriminator="type")
]

# type -> config model, for "did you mean" hints on unknown keys
SOURCE_MODELS: dict[str, type[BaseModel]] = {
    "excel": ExcelConfig,
    "csv": CsvConfig,
    "gsheet": GSheetConfig,
}
TARGET_MODELS: dict[str, type[BaseModel]] = {
    "phoenix": PhoenixConfig,
    "arize": ArizeConfig,
    "log10": Log10Config,
    "mlflow": MlflowConfig,
}


class StatusConfig(StrictModel):
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


class MappingConfig(StrictModel):
    source: SourceConfig
    target: TargetConfig
    annotations: list[AnnotationSpec] = Field(min_length=1)
    status: StatusConfig = Field(default_factory=StatusConfig)
    # Where the run lock and the journal of in-flight sends live (relative to this file);
    # default: $ANNOBRIDGE_STATE_DIR, else the user's state directory.
    state_dir: Path | None = None
    # What a synced row whose label, score and explanation were all cleared means: take the
    # annotation back on the platform (retract), or leave the platform as it is (keep).
    on_clear: Literal["retract", "keep"] = "retract"
    # A run that would retract more rows than this stops before sending anything (a sort
    # or paste gone wrong can look like mass clearing).
    max_retractions: int = Field(default=10, ge=0)
    path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _check(self) -> MappingConfig:
        seen: dict[tuple[str, str, str | None], int] = {}
        for i, a in enumerate(self.annotations):
            first = seen.setdefault((a.name, a.id_column, a.annotator_column), i)
            if first != i:
                raise ValueError(
                    f"annotations[{first}] and annotations[{i}] both write '{a.name}' for "
                    f"{a.id_column} by the same annotator column; give them different names"
                )
        notes = [i for i, a in enumerate(self.annotations) if a.note_column]
        refusal = self.target.notes_problem() if notes else None
        if refusal:
            raise ValueError(f"annotations[{notes[0]}].note_column: {refusal}")
        names = self.status.columns().names()
        if len(set(names)) != len(names):
            raise ValueError(
                f"status: two status columns have the same name ({', '.join(names)}); "
                "give each its own column"
            )
        status_cols = set(names)
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
        cols.extend(c for c in self.target.identity_columns() if c not in cols)
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
    model: Any = MappingConfig
    node = raw
    for part in loc[:-1]:
        if model is None:
            return None
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        field = model.model_fields.get(str(part))
        node = node.get(part) if isinstance(node, dict) else None
        if part in ("source", "target"):
            kind = node.get("type") if isinstance(node, dict) else None
            model = _section_model(str(part), str(kind))
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


def _type_of(data: dict[str, Any], section: str) -> str:
    node = data.get(section)
    return str(node.get("type")) if isinstance(node, dict) else ""


def _section_model(section: str, kind: str) -> type[BaseModel] | None:
    """The config model of a ``source:`` or ``target:`` type: built in, else a plug-in's."""
    if section == "source":
        if kind in SOURCE_MODELS:
            return SOURCE_MODELS[kind]
        source = source_plugin(kind) if kind else None
        return source.config if source else None
    if kind in TARGET_MODELS:
        return TARGET_MODELS[kind]
    target = target_plugin(kind) if kind else None
    return target.config if target else None


@functools.cache
def _model_for(source_type: str, target_type: str) -> type[MappingConfig]:
    """MappingConfig, or (for a plug-in medium or platform) a subclass whose ``source`` or
    ``target`` is the plug-in's config model. Built-in types never read the entry points."""
    fields: dict[str, Any] = {}
    if source_type and source_type not in SOURCE_MODELS:
        source = source_plugin(source_type)
        if source is not None:
            fields["source"] = (source.config, ...)
    if target_type and target_type not in TARGET_MODELS:
        target = target_plugin(target_type)
        if target is not None:
            fields["target"] = (target.config, ...)
    if not fields:
        return MappingConfig
    return create_model("MappingConfig", __base__=MappingConfig, **fields)


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


def _yaml_type_hint(err: Any, section: str) -> str | None:
    """Why a label or synonym is not text: YAML read an unquoted yes/no or number."""
    value = err["input"]
    if isinstance(value, bool):
        read = f"an unquoted yes, no, on, off, true or false as a boolean (here: {value})"
        example = '"yes": correct' if section == "synonyms" else 'labels: ["yes", "no"]'
    elif isinstance(value, int | float):
        read = f"an unquoted number as a number (here: {value})"
        example = '"1": correct' if section == "synonyms" else 'labels: ["1", "2"]'
    else:
        return None
    return f"{section} must be text, but YAML reads {read}; put it in quotes, e.g. {example}"


def _explain(exc: ValidationError, path: Path, raw: Any) -> MappingError:
    errors = exc.errors()
    # A misspelt required key yields 'missing' for the right name and 'extra_forbidden' for the
    # misspelling; the latter, with its "did you mean", is the one that helps.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
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
    if kind == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        tag = str(ctx.get("tag", ""))
        known = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
        close = difflib.get_close_matches(tag, known, n=1, cutoff=0.5)
        types = ", ".join(known)
        hint = f"did you mean '{close[0]}'? The types are: " if close else "the types are: "
        where = _format_loc((*loc, "type"))
        return MappingError(path, f"unknown type '{tag}'; {hint}{types}", key=where)
    if kind == "literal_error":
        return MappingError(path, err["msg"], key=key)
    for section in ("synonyms", "labels"):
        if section in loc and kind == "string_type":
            yaml_hint = _yaml_type_hint(err, section)
            if yaml_hint:
                at = loc[: loc.index(section) + 1]
                return MappingError(path, yaml_hint, key=_format_loc(at))
    msg = err["msg"].removeprefix("Value error, ")
    return MappingError(path, msg, key=key or None)


def parse_mapping(data: Any, path: Path) -> MappingConfig:
    """Validate an already-parsed mapping document (a dict) read from ``path``."""
    if not isinstance(data, dict):
        raise MappingError(path, "the file must be a YAML mapping with source, target, annotations")
    data = _expand_tree(data, path)
    for section in ("source", "target"):
        node = data.get(section)
        if isinstance(node, dict) and "type" not in node:
            raise MappingError(path, "this key is required", key=f"{section}.type")
    model = _model_for(_type_of(data, "source"), _type_of(data, "target"))
    try:
        mapping = model.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, path, data) from None
    base = path.parent
    source = mapping.source
    # Paths in a source section (a file, a credentials file) are relative to the mapping,
    # for every medium, plug-ins included.
    relative = {
        key: base / value
        for key, value in source
        if isinstance(value, Path) and not value.is_absolute()
    }
    if relative:
        source = source.model_copy(update=relative)
    state_dir = mapping.state_dir
    if state_dir is not None and not state_dir.is_absolute():
        state_dir = base / state_dir
    return mapping.model_copy(update={"source": source, "path": path, "state_dir": state_dir})


def load_mapping(path: str | os.PathLike[str]) -> MappingConfig:
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
        raw = p.read_bytes()
    except OSError as exc:
        raise MappingError(p, f"cannot read the file ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise MappingError(
            p, f"line {line} is not valid UTF-8; save the mapping file as UTF-8"
        ) from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader
    except _AliasBomb as exc:
        raise MappingError(p, str(exc), key=exc.key) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        if "'\\t'" in problem:
            problem += "; indent with spaces, not tabs"
        raise MappingError(p, f"not valid YAML{where}: {problem}") from None
    return parse_mapping(data, p)


MAX_MAPPING_NODES = 100_000
"""The most values (keys, strings, lists...) a mapping may hold once its aliases are
expanded. A real mapping holds a few hundred; a YAML alias bomb ("billion laughs") holds
billions in a few lines, and expanding them would take minutes of CPU and all the memory."""


class _AliasBomb(yaml.YAMLError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _expanded_size(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand past ``MAX_MAPPING_NODES``, before any of it is
    constructed: each node's expanded size is counted once (aliases share one node), so
    the check costs one visit per node of the file, never the expansion.

    :raises _AliasBomb: naming the key whose value is too large once expanded (the key that
        holds the alias, as far down as one key accounts for it).
    """
    sizes: dict[int, int] = {}
    uses: dict[int, int] = {}
    visiting: set[int] = set()

    def children(node: yaml.Node) -> list[tuple[str, yaml.Node]]:
        if isinstance(node, yaml.MappingNode):
            out: list[tuple[str, yaml.Node]] = []
            for k, v in node.value:
                name = str(k.value) if isinstance(k, yaml.ScalarNode) else "?"
                out.append((f".{name}", k))
                out.append((f".{name}", v))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [(f"[{i}]", v) for i, v in enumerate(node.value)]
        return []

    def size(node: yaml.Node) -> int:
        # iterative post-order: a deep document must not exhaust Python's recursion
        stack: list[tuple[yaml.Node, bool]] = [(node, False)]
        while stack:
            current, done = stack.pop()
            ident = id(current)
            if done:
                visiting.discard(ident)
                total = 1 + sum(sizes[id(c)] for _, c in children(current))
                sizes[ident] = total
                continue
            uses[ident] = uses.get(ident, 0) + 1
            if ident in sizes:
                continue
            if ident in visiting:
                raise _AliasBomb("", "an alias refers to itself; the value would never end")
            visiting.add(ident)
            stack.append((current, True))
            stack.extend((c, False) for _, c in children(current))
        return sizes[id(node)]

    if size(root) <= MAX_MAPPING_NODES:
        return
    path, node = "", root
    while True:  # down the largest branch, to the key that holds a shared (aliased) value
        heavy = None
        for branch in children(node):  # the largest; of equals the last (the alias, not
            if heavy is None or sizes[id(branch[1])] >= sizes[id(heavy[1])]:  # its anchor)
                heavy = branch
        if heavy is None or sizes[id(heavy[1])] <= MAX_MAPPING_NODES:
            break
        path, node = path + heavy[0], heavy[1]
        if uses[id(node)] > 1:
            break
    # the key, not the list item under it: "rules.labels", not "rules.labels[8][9]"
    key = re.sub(r"(\[\d+\])+$", "", path).lstrip(".") or "(the whole file)"
    raise _AliasBomb(
        key,
        f"its YAML aliases (*name) expand to more than {MAX_MAPPING_NODES:,} values; a "
        "mapping needs nothing so large. Write the values out, or use an anchor (&name) "
        "only for a section you repeat a few times",
    )


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, but a key written twice in one section is an error, not a
    silent "the last one wins", and aliases that expand past ``MAX_MAPPING_NODES`` values
    are refused before anything is constructed (see ``_expanded_size``)."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        return self.construct_document(node)

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *defaults`: merged by SafeLoader, the keys here win
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, Hashable) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key '{key}' appears twice in the same section; keep one",
                        key_node.start_mark,
                    )
                if isinstance(key, Hashable):
                    seen.add(key)
        return super().construct_mapping(node, deep=deep)
