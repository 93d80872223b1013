"""The mapping file: YAML -> models, env expansion, and the errors a user can make in it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bridge.errors import EXIT_USAGE, ConfigError, MappingError
from bridge.mapping import MappingConfig, expand_env, load_mapping, parse_mapping
from bridge.records import StatusColumns
from bridge.sources.csv.config import CsvConfig
from bridge.sources.excel.config import ExcelConfig
from bridge.targets.phoenix.config import PhoenixConfig

GOOD = """\
source:
  type: excel
  path: data/labels.xlsx
  worksheet: Labels
  header_row: 2
target:
  type: phoenix
  url: http://127.0.0.1:6006
annotations:
  - name: correctness
    id_column: span_id
    label_column: label
    score_column: score
    explanation_column: explanation
    annotator_column: annotator
    rules:
      labels: [correct, incorrect]
      score_min: 0
      score_max: 1
      require: label
"""


def write(tmp_path: Path, text: str, name: str = "mapping.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    """The message load_mapping raises for ``text``, without the file's path."""
    path = write(tmp_path, text)
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    message = str(info.value)
    assert message.startswith(f"{path}"), message
    return message.removeprefix(f"{path}")


def excel(mapping: MappingConfig) -> ExcelConfig:
    assert isinstance(mapping.source, ExcelConfig)
    return mapping.source


def with_line(text: str, anchor: str, line: str) -> str:
    """``text`` with ``line`` inserted right after the line that contains ``anchor``."""
    out = []
    for existing in text.splitlines():
        out.append(existing)
        if anchor in existing:
            indent = existing[: len(existing) - len(existing.lstrip())]
            out.append(indent + line)
    assert len(out) == len(text.splitlines()) + 1, f"anchor {anchor!r} not unique"
    return "\n".join(out) + "\n"


# --- a valid mapping ------------------------------------------------------------------------


def test_valid_mapping_loads_with_paths_relative_to_the_mapping_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, GOOD, "conf/mapping.yaml")
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    mapping = load_mapping(Path("conf/mapping.yaml"))
    assert isinstance(mapping.source, ExcelConfig)
    assert mapping.source.path.absolute() == tmp_path / "conf" / "data" / "labels.xlsx"
    assert mapping.source.worksheet == "Labels"
    assert mapping.source.header_row == 2
    assert isinstance(mapping.target, PhoenixConfig)
    assert mapping.target.url == "http://127.0.0.1:6006"
    assert mapping.path == Path("conf/mapping.yaml")
    assert path.exists()
    (spec,) = mapping.annotations
    assert spec.name == "correctness"
    assert spec.used_columns() == ["span_id", "label", "score", "explanation", "annotator"]
    assert spec.annotator_kind == "HUMAN"
    assert spec.rules.labels == ["correct", "incorrect"]
    assert (spec.rules.score_min, spec.rules.score_max, spec.rules.require) == (0, 1, "label")
    assert mapping.status.columns() == StatusColumns()
    assert mapping.key_columns() == ["span_id", "annotator"]


def test_absolute_source_path_is_kept(tmp_path: Path) -> None:
    book = tmp_path / "elsewhere" / "labels.xlsx"
    mapping = load_mapping(write(tmp_path, GOOD.replace("data/labels.xlsx", str(book)), "m/x.yaml"))
    assert excel(mapping).path == book


def test_csv_source_path_is_relative_to_the_mapping_file_too(tmp_path: Path) -> None:
    text = GOOD.replace("type: excel", "type: csv").replace("  worksheet: Labels\n", "")
    text = text.replace("data/labels.xlsx", "labels.csv")
    mapping = load_mapping(write(tmp_path, text, "sub/m.yaml"))
    assert isinstance(mapping.source, CsvConfig)
    assert mapping.source.path == tmp_path / "sub" / "labels.csv"
    assert (mapping.source.delimiter, mapping.source.encoding) == (",", "utf-8-sig")


def test_defaults_of_an_annotation_entry(tmp_path: Path) -> None:
    text = """\
    source: {type: excel, path: labels.xlsx}
    target: {type: phoenix}
    annotations:
      - {name: correctness, id_column: span_id, label_column: label}
    """
    mapping = load_mapping(write(tmp_path, text))
    (spec,) = mapping.annotations
    assert spec.rules.require == "label_or_score"
    assert spec.rules.labels is None
    assert spec.rules.case_sensitive is False
    assert spec.annotator is None
    assert excel(mapping).worksheet is None
    assert mapping.key_columns() == ["span_id"]


def test_key_columns_are_the_id_and_annotator_columns_of_every_entry_once(tmp_path: Path) -> None:
    text = GOOD + textwrap.indent(
        textwrap.dedent(
            """\
            - name: helpfulness
              id_column: span_id
              score_column: helpful
              annotator_column: reviewer
            - name: tone
              id_column: trace_id
              label_column: tone
              annotator_column: annotator
            """
        ),
        "  ",
    )
    mapping = load_mapping(write(tmp_path, text))
    assert mapping.key_columns() == ["span_id", "annotator", "reviewer", "trace_id"]


def test_custom_status_column_names(tmp_path: Path) -> None:
    text = GOOD + "status:\n  status_column: Status\n  message_column: Why\n"
    mapping = load_mapping(write(tmp_path, text))
    assert mapping.status.columns() == StatusColumns(status="Status", message="Why")


# --- environment variables ------------------------------------------------------------------


def test_env_vars_expand_with_and_without_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABELS_DIR", "shared")
    monkeypatch.setenv("SHEET", "Week 12")
    monkeypatch.setenv("EMPTY", "")
    monkeypatch.delenv("UNSET_HOST", raising=False)
    text = (
        GOOD.replace("data/labels.xlsx", "${LABELS_DIR}/labels.xlsx")
        .replace("worksheet: Labels", "worksheet: ${SHEET}")
        .replace("http://127.0.0.1:6006", "http://${UNSET_HOST:-127.0.0.1}:${EMPTY:-6006}")
        .replace("header_row: 2", "header_row: ${HEADER_ROW:-3}")
        .replace("- name: correctness", "- name: ${NAME:-correctness}")
    )
    mapping = load_mapping(write(tmp_path, text))
    assert excel(mapping).path == tmp_path / "shared" / "labels.xlsx"
    assert excel(mapping).worksheet == "Week 12"
    assert mapping.source.header_row == 3
    assert mapping.target.url == "http://127.0.0.1:6006"
    assert mapping.annotations[0].name == "correctness"


def test_expand_env_rules() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert expand_env("${A}-${A:-x}", env) == "1-1"
    assert expand_env("${EMPTY:-fallback}", env) == "fallback"  # like the shell's :-
    assert expand_env("${EMPTY}", env) == ""  # set, even if empty, is not an error
    assert expand_env("${B:-}", env) == ""
    assert expand_env("$A and {A}", env) == "$A and {A}"  # only ${...} is a reference
    with pytest.raises(KeyError, match="B"):
        expand_env("${B}", env)


def test_unset_env_var_is_an_error_naming_it_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LABELS_SHEET", raising=False)
    message = error_of(tmp_path, GOOD.replace("worksheet: Labels", "worksheet: ${LABELS_SHEET}"))
    assert message == (
        ", key 'source.worksheet': environment variable LABELS_SHEET is not set; set it, or "
        "write ${LABELS_SHEET:-default} to give a default"
    )


def test_unset_env_var_in_a_list_names_the_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("THE_LABEL", raising=False)
    message = error_of(tmp_path, GOOD.replace("[correct, incorrect]", '[correct, "${THE_LABEL}"]'))
    assert message.startswith(
        ", key 'annotations[0].rules.labels[1]': environment variable THE_LABEL is not set"
    )


# --- the file itself ------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    assert str(info.value) == f"{path}: no such file; create one with 'annobridge init'"
    assert info.value.exit_code == EXIT_USAGE
    assert isinstance(info.value, ConfigError)


def test_a_folder_instead_of_a_file(tmp_path: Path) -> None:
    with pytest.raises(MappingError) as info:
        load_mapping(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a folder; give the mapping file (.yaml) inside it"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "source:\n  type: excel\n  path: [labels.xlsx\n",
            ": not valid YAML at line 4, column 1: expected ',' or ']', but got '<stream end>'",
        ),
        (
            "source:\n  type: excel\ntarget: phoenix: x\n",
            ": not valid YAML at line 3, column 16: mapping values are not allowed here",
        ),
        (
            "source:\n\ttype: excel\n",
            ": not valid YAML at line 2, column 1: found character '\\t' that cannot start any "
            "token; indent with spaces, not tabs",
        ),
        (
            "source:\n  type: excel\n  path: a.xlsx\n  type: csv\n",
            ": not valid YAML at line 4, column 3: key 'type' appears twice in the same section; "
            "keep one",
        ),
    ],
    ids=["unclosed-list", "colon-in-value", "tab", "duplicate-key"],
)
def test_unparsable_yaml_names_line_and_column(tmp_path: Path, text: str, expected: str) -> None:
    assert error_of(tmp_path, text) == expected


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just words\n"])
def test_a_document_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    assert error_of(tmp_path, text) == (
        ": the file must be a YAML mapping with source, target, annotations"
    )


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(b"source:\n  type: excel\n  worksheet: caf\xe9\n")
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    assert str(info.value) == f"{path}: line 3 is not valid UTF-8; save the mapping file as UTF-8"


# --- unknown and missing keys ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("anchor", "line", "expected"),
    [
        (
            "worksheet: Labels",
            "heder_row: 3",
            "source.heder_row': unknown key 'heder_row'; did you mean 'header_row'?",
        ),
        (
            "url: http",
            "anotate: span",
            "target.anotate': unknown key 'anotate'; did you mean 'annotate'?",
        ),
        (
            "label_column: label",
            "score_colum: x",
            "annotations[0].score_colum': unknown key 'score_colum'; did you mean 'score_column'?",
        ),
        (
            "score_max: 1",
            "scoremax: 2",
            "annotations[0].rules.scoremax': unknown key 'scoremax'; did you mean 'score_max'?",
        ),
        (
            "require: label",
            "case_sensitve: true",
            "annotations[0].rules.case_sensitve': unknown "
            "key 'case_sensitve'; did you mean 'case_sensitive'?",
        ),
    ],
    ids=["source", "target", "annotation", "rules", "rules-2"],
)
def test_unknown_key_suggests_the_near_one(
    tmp_path: Path, anchor: str, line: str, expected: str
) -> None:
    assert error_of(tmp_path, with_line(GOOD, anchor, line)) == ", key '" + expected


def test_unknown_key_in_status_and_at_top_level(tmp_path: Path) -> None:
    assert error_of(tmp_path, GOOD + "status:\n  synced_at_colum: When\n") == (
        ", key 'status.synced_at_colum': unknown key 'synced_at_colum'; did you mean "
        "'synced_at_column'?"
    )
    assert error_of(tmp_path, GOOD + "stauts:\n  status_column: x\n") == (
        ", key 'stauts': unknown key 'stauts'; did you mean 'status'?"
    )


def test_unknown_key_in_the_second_annotation_names_its_index(tmp_path: Path) -> None:
    text = GOOD + "  - name: tone\n    id_column: span_id\n    labl_column: tone\n"
    assert error_of(tmp_path, text) == (
        ", key 'annotations[1].labl_column': unknown key 'labl_column'; did you mean "
        "'label_column'?"
    )


def test_unknown_key_with_nothing_close_lists_the_known_keys(tmp_path: Path) -> None:
    text = with_line(GOOD, "worksheet: Labels", "colour: blue")
    assert error_of(tmp_path, text) == (
        ", key 'source.colour': unknown key 'colour'; known keys: type, path, worksheet, header_row"
    )


def test_a_misspelt_required_key_gets_did_you_mean_not_just_required(tmp_path: Path) -> None:
    text = GOOD.replace("id_column: span_id", "id_colum: span_id")
    assert error_of(tmp_path, text) == (
        ", key 'annotations[0].id_colum': unknown key 'id_colum'; did you mean 'id_column'?"
    )
    text = GOOD.replace("annotations:", "annotation:")
    assert error_of(tmp_path, text) == (
        ", key 'annotation': unknown key 'annotation'; did you mean 'annotations'?"
    )


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("    id_column: span_id\n", "", "annotations[0].id_column"),
        ("  - name: correctness\n", "  - annotator_kind: LLM\n", "annotations[0].name"),
        ("  type: excel\n", "", "source.type"),
        ("  type: phoenix\n", "", "target.type"),
        ("  path: data/labels.xlsx\n", "", "source.path"),
    ],
)
def test_missing_required_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    assert old in GOOD
    assert error_of(tmp_path, GOOD.replace(old, new, 1)) == f", key '{key}': this key is required"


def test_missing_target_section(tmp_path: Path) -> None:
    text = GOOD.replace("target:\n  type: phoenix\n  url: http://127.0.0.1:6006\n", "")
    assert error_of(tmp_path, text) == ", key 'target': this key is required"


def test_no_annotations(tmp_path: Path) -> None:
    text = GOOD.split("annotations:")[0] + "annotations: []\n"
    assert error_of(tmp_path, text) == (
        ", key 'annotations': List should have at least 1 item after validation, not 0"
    )


def test_unknown_source_type_lists_the_types(tmp_path: Path) -> None:
    assert error_of(tmp_path, GOOD.replace("type: excel", "type: xlsx")) == (
        ", key 'source.type': unknown type 'xlsx'; the types are: excel, csv, gsheet"
    )


def test_a_key_of_another_source_type(tmp_path: Path) -> None:
    text = GOOD.replace("type: excel", "type: csv")
    assert error_of(tmp_path, text) == (
        ", key 'source.worksheet': unknown key 'worksheet'; known keys: type, path, header_row, "
        "delimiter, encoding"
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "header_row: 2",
            "header_row: 0",
            "source.header_row': Input should be greater than or equal to 1",
        ),
        (
            "require: label",
            "require: both",
            "annotations[0].rules.require': Input should be "
            "'label', 'score', 'label_or_score' or 'label_and_score'",
        ),
        (
            "annotator_column: annotator",
            "annotator_kind: human",
            "annotations[0].annotator_kind': Input should be 'HUMAN', 'LLM' or 'CODE'",
        ),
        (
            "score_min: 0",
            "score_min: low",
            "annotations[0].rules.score_min': Input should be a "
            "valid number, unable to parse string as a number",
        ),
    ],
)
def test_values_of_the_wrong_kind(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in GOOD
    assert error_of(tmp_path, GOOD.replace(old, new)) == ", key '" + expected


# --- secrets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "env"),
    [
        ("api_key", "sk-123", "PHOENIX_API_KEY / ARIZE_API_KEY / LOG10_TOKEN"),
        ("API_KEY", "sk-123", "PHOENIX_API_KEY / ARIZE_API_KEY / LOG10_TOKEN"),
        ("apikey", "sk-123", "PHOENIX_API_KEY / ARIZE_API_KEY / LOG10_TOKEN"),
        (
            "token",
            "t0k",
            "the platform's token variable, e.g. MLFLOW_TRACKING_TOKEN or LOG10_TOKEN",
        ),
        ("password", "hunter2", "MLFLOW_TRACKING_PASSWORD"),
        ("secret", "s3cr3t", "the platform's own environment variable"),
        ("headers", "{Authorization: Bearer x}", "PHOENIX_CLIENT_HEADERS"),
    ],
)
def test_secret_looking_keys_are_refused_with_the_env_var_to_use(
    tmp_path: Path, key: str, value: str, env: str
) -> None:
    message = error_of(tmp_path, with_line(GOOD, "url: http", f"{key}: {value}"))
    assert message == (
        f", key 'target.{key}': secrets do not belong in a mapping file; remove '{key}' and set "
        f"{env} in the environment instead"
    )
    assert value not in message


def test_a_secret_key_anywhere_is_refused(tmp_path: Path) -> None:
    message = error_of(tmp_path, with_line(GOOD, "worksheet: Labels", "password: hunter2"))
    assert message.startswith(", key 'source.password': secrets do not belong in a mapping file")


# --- rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (
            "{labels: [correct], synonyms: {yes: correct}}",
            "synonyms must be text, but YAML reads "
            "an unquoted yes, no, on, off, true or false as a boolean (here: True); put it in "
            'quotes, e.g. "yes": correct',
        ),
        (
            "{labels: [correct], synonyms: {'y': off}}",
            "synonyms must be text, but YAML reads an "
            "unquoted yes, no, on, off, true or false as a boolean (here: False); put it in quotes,"
            ' e.g. "yes": correct',
        ),
        (
            "{labels: [correct], synonyms: {1: correct}}",
            "synonyms must be text, but YAML reads an "
            'unquoted number as a number (here: 1); put it in quotes, e.g. "1": correct',
        ),
    ],
    ids=["yes-key", "off-value", "number-key"],
)
def test_yaml_yes_no_in_synonyms_gets_the_quoting_hint(
    tmp_path: Path, rules: str, expected: str
) -> None:
    text = GOOD.split("    rules:")[0] + f"    rules: {rules}\n"
    assert error_of(tmp_path, text) == f", key 'annotations[0].rules.synonyms': {expected}"


def test_yaml_yes_no_in_labels_gets_the_quoting_hint(tmp_path: Path) -> None:
    assert error_of(tmp_path, GOOD.replace("[correct, incorrect]", "[yes, no]")) == (
        ", key 'annotations[0].rules.labels': labels must be text, but YAML reads an unquoted "
        "yes, no, on, off, true or false as a boolean (here: True); put it in quotes, e.g. "
        'labels: ["yes", "no"]'
    )
    mapping = load_mapping(write(tmp_path, GOOD.replace("[correct, incorrect]", '["yes", "no"]')))
    assert mapping.annotations[0].rules.labels == ["yes", "no"]


def test_score_min_above_score_max(tmp_path: Path) -> None:
    text = GOOD.replace("score_min: 0", "score_min: 5").replace("score_max: 1", "score_max: 0.5")
    assert error_of(tmp_path, text) == (
        ", key 'annotations[0].rules': score_min 5 is above score_max 0.5; swap them or fix one "
        "of them"
    )


def test_equal_score_bounds_are_fine(tmp_path: Path) -> None:
    mapping = load_mapping(write(tmp_path, GOOD.replace("score_max: 1", "score_max: 0")))
    assert mapping.annotations[0].rules.score_max == 0


def test_synonyms_must_map_to_listed_labels(tmp_path: Path) -> None:
    text = with_line(GOOD, "score_max: 1", 'synonyms: {"👍": correct, "👎": wrong, meh: bad}')
    assert error_of(tmp_path, text) == (
        ", key 'annotations[0].rules': synonyms map to 'bad', 'wrong', not in labels; add them "
        "to labels or fix the synonyms"
    )
    text = with_line(GOOD, "score_max: 1", 'synonyms: {"👍": correct, "👎": wrong}')
    assert error_of(tmp_path, text).endswith(
        "synonyms map to 'wrong', not in labels; add it to labels or fix the synonyms"
    )


def test_synonyms_without_labels_may_map_anywhere(tmp_path: Path) -> None:
    text = GOOD.replace("      labels: [correct, incorrect]\n", "      synonyms: {y: positive}\n")
    assert load_mapping(write(tmp_path, text)).annotations[0].rules.synonyms == {"y": "positive"}


def test_empty_label_list(tmp_path: Path) -> None:
    assert error_of(tmp_path, GOOD.replace("[correct, incorrect]", "[]")) == (
        ", key 'annotations[0].rules': labels is empty; list the allowed labels or remove the key"
    )


@pytest.mark.parametrize(
    ("require", "drop", "expected"),
    [
        (
            "label",
            "label_column",
            "rules.require is label, but there is no label_column; add "
            "label_column or change rules.require, or every row would be invalid",
        ),
        (
            "score",
            "score_column",
            "rules.require is score, but there is no score_column; add "
            "score_column or change rules.require, or every row would be invalid",
        ),
        (
            "label_and_score",
            "score_column",
            "rules.require is label_and_score, but there is no "
            "score_column; add score_column or change rules.require, or every row would be invalid",
        ),
    ],
)
def test_require_needs_its_columns(tmp_path: Path, require: str, drop: str, expected: str) -> None:
    text = GOOD.replace("require: label", f"require: {require}")
    text = "".join(line for line in text.splitlines(keepends=True) if drop not in line)
    if drop == "label_column":
        text = text.replace("      labels: [correct, incorrect]\n", "")
    assert error_of(tmp_path, text) == f", key 'annotations[0]': {expected}"


def test_default_require_needs_a_label_or_a_score_column(tmp_path: Path) -> None:
    text = """\
    source: {type: excel, path: labels.xlsx}
    target: {type: phoenix}
    annotations:
      - {name: comment, id_column: span_id, explanation_column: comment}
    """
    assert error_of(tmp_path, text) == (
        ", key 'annotations[0]': rules.require is label_or_score, but there is no label_column "
        "or score_column; add label_column or score_column or change rules.require, or every "
        "row would be invalid"
    )


def test_an_entry_must_read_something(tmp_path: Path) -> None:
    text = """\
    source: {type: excel, path: labels.xlsx}
    target: {type: phoenix}
    annotations:
      - {name: correctness, id_column: span_id}
    """
    assert error_of(tmp_path, text) == (
        ", key 'annotations[0]': give at least one of label_column, score_column, "
        "explanation_column"
    )


# --- names and columns ----------------------------------------------------------------------


def test_annotation_name_note_is_refused(tmp_path: Path) -> None:
    assert error_of(tmp_path, GOOD.replace("name: correctness", "name: note")) == (
        ", key 'annotations[0]': 'note' is reserved by Phoenix for span notes; choose another name"
    )


def test_empty_annotation_name(tmp_path: Path) -> None:
    assert error_of(tmp_path, GOOD.replace("name: correctness", "name: ''")) == (
        ", key 'annotations[0].name': String should have at least 1 character"
    )


def test_an_annotation_reading_a_status_column_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("explanation_column: explanation", "explanation_column: sync_message")
    assert error_of(tmp_path, text) == (
        ": annotation 'correctness' reads the status column ['sync_message']; status columns are "
        "written by annobridge"
    )


def test_a_renamed_status_column_is_protected_too(tmp_path: Path) -> None:
    text = GOOD + "status:\n  status_column: label\n"
    assert error_of(tmp_path, text) == (
        ": annotation 'correctness' reads the status column ['label']; status columns are "
        "written by annobridge"
    )


def test_two_status_columns_with_one_name(tmp_path: Path) -> None:
    text = GOOD + "status:\n  message_column: sync_status\n"
    assert error_of(tmp_path, text) == (
        ": status: two status columns have the same name (sync_status, synced_at, sync_status, "
        "sync_id, sync_hash); give each its own column"
    )


def test_two_entries_writing_the_same_annotation(tmp_path: Path) -> None:
    text = GOOD + "  - name: correctness\n    id_column: span_id\n    score_column: s2\n"
    text += "    annotator_column: annotator\n"
    assert error_of(tmp_path, text) == (
        ": annotations[0] and annotations[1] both write 'correctness' for span_id by the same "
        "annotator column; give them different names"
    )


# --- parse_mapping directly -----------------------------------------------------------------


def test_parse_mapping_resolves_paths_against_the_given_file() -> None:
    data = {
        "source": {"type": "excel", "path": "labels.xlsx"},
        "target": {"type": "phoenix"},
        "annotations": [{"name": "c", "id_column": "span_id", "score_column": "score"}],
    }
    mapping = parse_mapping(data, Path("/srv/labels/m.yaml"))
    assert isinstance(mapping, MappingConfig)
    assert excel(mapping).path == Path("/srv/labels/labels.xlsx")
    assert data["source"] == {"type": "excel", "path": "labels.xlsx"}  # input not mutated


def test_parse_mapping_refuses_a_list() -> None:
    with pytest.raises(MappingError, match="the file must be a YAML mapping"):
        parse_mapping([{"source": 1}], Path("m.yaml"))
