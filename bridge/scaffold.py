"""`annobridge init`: a starter mapping and a template workbook built from its rules."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import yaml
from openpyxl.styles import Font, PatternFill
from openpyxl.worksheet.datavalidation import DataValidation

from bridge.errors import ConfigError
from bridge.mapping import MappingConfig, load_mapping, parse_mapping
from bridge.sources._table import column_letter
from bridge.sources.gsheets.source import credential_files, service_account_email

TARGETS = ("phoenix", "mlflow", "arize", "log10")
PHOENIX_ANNOTATE = ("span", "trace", "session", "document")
MLFLOW_ID_KINDS = ("trace_id", "client_request_id")

_HEAD = """\
# annobridge mapping: where the labels are, where they go, and the rules they follow.
# Paths are relative to this file; ${VAR} and ${VAR:-default} expand from the environment.
"""

_EXCEL_SOURCE = """\
source:
  type: excel
  path: {workbook}
  worksheet: Labels
  header_row: 1
"""

_PHOENIX = """\
# Where Phoenix is and who you are come from Phoenix's own variables, never from this file:
#   PHOENIX_COLLECTOR_ENDPOINT or PHOENIX_BASE_URL (or PHOENIX_HOST and PHOENIX_PORT;
#   default http://127.0.0.1:6006), PHOENIX_PROJECT_NAME (default: default), and
#   PHOENIX_API_KEY (or PHOENIX_CLIENT_HEADERS) when your Phoenix has auth enabled.
target:
  type: phoenix
  # url: http://127.0.0.1:6006     # overrides the PHOENIX_* variables
  annotate: {annotate}              # span | trace | session: what the id column holds
  # project: my-app                 # overrides PHOENIX_PROJECT_NAME
annotations:
  - name: correctness
    id_column: {id_column}
    label_column: label
    score_column: score
    explanation_column: explanation
    annotator_column: annotator
    annotator_kind: HUMAN
    rules:
      labels: [correct, incorrect]
      synonyms: {{"👍": correct, "👎": incorrect, "yes": correct, "no": incorrect}}
      score_min: 0
      score_max: 1
      require: label
"""

_PHOENIX_DOCUMENTS = """\
# Where Phoenix is and who you are come from Phoenix's own variables, never from this file:
#   PHOENIX_COLLECTOR_ENDPOINT or PHOENIX_BASE_URL (or PHOENIX_HOST and PHOENIX_PORT;
#   default http://127.0.0.1:6006), PHOENIX_PROJECT_NAME (default: default), and
#   PHOENIX_API_KEY (or PHOENIX_CLIENT_HEADERS) when your Phoenix has auth enabled.
# Retrieval relevance: one row per (retriever span, document); `annobridge export` fills the
# span ids, positions and documents' contents.
target:
  type: phoenix
  # url: http://127.0.0.1:6006     # overrides the PHOENIX_* variables
  annotate: document                 # the id column holds the retriever span's id
  document_position_column: document_position   # the document's 0-based position
  # project: my-app                 # overrides PHOENIX_PROJECT_NAME
annotations:
  - name: relevance
    id_column: span_id
    label_column: label
    score_column: score
    explanation_column: explanation
    annotator_column: annotator
    annotator_kind: HUMAN
    rules:
      labels: [relevant, irrelevant]
      synonyms: {{"👍": relevant, "👎": irrelevant, "yes": relevant, "no": irrelevant}}
      score_min: 0
      score_max: 1
      require: label
"""

_MLFLOW = """\
# Where MLflow is and who you are come from MLflow's own variables, never from this file:
#   MLFLOW_TRACKING_URI (default http://localhost:5000), and MLFLOW_TRACKING_USERNAME with
#   MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN, when your server has auth enabled.
target:
  type: mlflow
  experiment: ${{MLFLOW_EXPERIMENT_NAME:-Default}}   # name or id; export needs it
  id_kind: {id_kind}      # trace_id (tr-...) | client_request_id (the app's own request id)
  values:
    correctness: pass_fail            # correct -> true, incorrect -> false (labels order)
annotations:
  - name: correctness
    id_column: {id_column}
    label_column: label
    explanation_column: explanation   # sent as the rationale
    annotator_column: annotator       # sent as the source id, with source type HUMAN
    annotator_kind: HUMAN
    rules:
      labels: [correct, incorrect]
      synonyms: {{"👍": correct, "👎": incorrect, "yes": correct, "no": incorrect}}
      require: label
"""

_ARIZE = """\
# Arize AX through its GraphQL API (updateAnnotations). The key comes from ARIZE_API_KEY
# (a developer key from Arize's settings), never from this file.
target:
  type: arize
  api: graphql
  url: ${{ARIZE_APP_URL:-https://app.arize.com}}    # GraphQL is at <url>/graphql
  model_id: ${{ARIZE_MODEL_ID:-<the model's id, as in its Arize URL>}}
  environment: tracing
  # Arize needs a startTime at most 24 h before each record's start: each row's own
  start_time_column: start_time
annotations:
  # Arize's GraphQL API takes a label or a score, not both: one entry for each.
  - name: correctness
    id_column: span_id
    label_column: label
    explanation_column: explanation
    annotator_column: annotator
    rules:
      labels: [correct, incorrect]
      require: label
  - name: correctness_score
    id_column: span_id
    score_column: score
    annotator_column: annotator
    rules:
      score_min: 0
      score_max: 1
"""

_LOG10 = """\
# log10 feedback (EXPERIMENTAL: log10 has had no release since January 2025). Credentials
# come from LOG10_TOKEN and LOG10_ORG_ID, never from this file; LOG10_URL defaults to
# https://log10.io.
target:
  type: log10
  task_id: ${{LOG10_TASK_ID:-<the feedback task's id>}}   # its JSON schema checks every row
  match: tags                     # tags | completion_ids: what the id column holds
  json_values:                    # task field -> label | score | explanation | annotator
    feedback: label
  on_edit: reject                 # log10 cannot update feedback: refuse edited rows
annotations:
  - name: feedback
    id_column: tags
    label_column: label
    explanation_column: explanation   # sent as the feedback's comment
    annotator_column: annotator
    rules:
      labels: [good, bad]
      require: label
"""


def starter_mapping(
    target: str = "phoenix",
    *,
    workbook: str = "labels.xlsx",
    annotate: str | None = None,
    id_kind: str | None = None,
) -> str:
    """The text of a starter mapping for ``target``, on an Excel workbook.

    :param annotate: Phoenix only: span (default), trace, session or document.
    :param id_kind: MLflow only: trace_id (default) or client_request_id.
    :raises ConfigError: an unknown target, or an option the target does not take.
    """
    if target not in TARGETS:
        raise ConfigError(f"--target '{target}': choose one of {', '.join(TARGETS)}")
    if annotate is not None and target != "phoenix":
        raise ConfigError(f"--annotate is for --target phoenix; {target} does not take it")
    if id_kind is not None and target != "mlflow":
        raise ConfigError(f"--id-kind is for --target mlflow; {target} does not take it")
    if annotate is not None and annotate not in PHOENIX_ANNOTATE:
        raise ConfigError(f"--annotate '{annotate}': choose one of {', '.join(PHOENIX_ANNOTATE)}")
    if id_kind is not None and id_kind not in MLFLOW_ID_KINDS:
        raise ConfigError(f"--id-kind '{id_kind}': choose one of {', '.join(MLFLOW_ID_KINDS)}")
    if target == "phoenix" and annotate == "document":
        body = _PHOENIX_DOCUMENTS.format()
    elif target == "phoenix":
        kind = annotate or "span"
        body = _PHOENIX.format(annotate=kind, id_column=f"{kind}_id")
    elif target == "mlflow":
        kind = id_kind or "trace_id"
        column = "trace_id" if kind == "trace_id" else "request_id"
        body = _MLFLOW.format(id_kind=kind, id_column=column)
    elif target == "arize":
        body = _ARIZE.format()
    else:
        body = _LOG10.format()
    return _HEAD + _EXCEL_SOURCE.format(workbook=workbook) + body


CONTEXT_COLUMNS = ["input", "output"]
MAX_LIST_VALIDATION = 255  # Excel refuses list validations longer than 255 characters


def template_columns(mapping: MappingConfig) -> list[str]:
    """Header of the template workbook: ids, context, the labelled columns, status."""
    ids = [a.id_column for a in mapping.annotations]
    cols: list[str] = []
    for c in [*ids, *CONTEXT_COLUMNS]:
        if c not in cols:
            cols.append(c)
    for a in mapping.annotations:
        for c in a.used_columns():
            if c not in cols:
                cols.append(c)
    for c in mapping.target.extra_columns():
        if c not in cols:
            cols.append(c)
    return cols + [c for c in mapping.status.columns().names() if c not in cols]


def write_template_workbook(path: Path, mapping: MappingConfig, rows: int = 1000) -> None:
    """An .xlsx with the mapping's header, and dropdowns so SMEs type only valid values."""
    book = openpyxl.Workbook()
    ws = book.active
    worksheet = getattr(mapping.source, "worksheet", None)
    ws.title = worksheet or "Labels"
    header = template_columns(mapping)
    status_names = set(mapping.status.columns().names())
    bold = Font(bold=True)
    status_fill = PatternFill("solid", fgColor="DDDDDD")
    for i, name in enumerate(header, start=1):
        cell = ws.cell(row=1, column=i, value=name)
        cell.data_type = "s"  # a column name is text, never a formula
        cell.font = bold
        if name in status_names:
            cell.fill = status_fill
        ws.column_dimensions[column_letter(i - 1)].width = max(12, len(name) + 2)
    ws.freeze_panes = "A2"
    last = rows + 1
    for a in mapping.annotations:
        r = a.rules
        if a.label_column and r.labels:
            options = ",".join(r.labels)
            if len(options) <= MAX_LIST_VALIDATION and '"' not in options:
                col = column_letter(header.index(a.label_column))
                dv = DataValidation(type="list", formula1=f'"{options}"', allow_blank=True)
                dv.error = f"Choose one of: {', '.join(r.labels)}"
                dv.errorTitle = f"{a.name}: label"
                dv.add(f"{col}2:{col}{last}")
                ws.add_data_validation(dv)
        if a.score_column and (r.score_min is not None or r.score_max is not None):
            col = column_letter(header.index(a.score_column))
            low = r.score_min if r.score_min is not None else -1e308
            high = r.score_max if r.score_max is not None else 1e308
            dv = DataValidation(
                type="decimal",
                operator="between",
                formula1=str(low),
                formula2=str(high),
                allow_blank=True,
            )
            dv.error = f"A number between {low:g} and {high:g}"
            dv.errorTitle = f"{a.name}: score"
            dv.add(f"{col}2:{col}{last}")
            ws.add_data_validation(dv)
    book.save(path)


def init_project(
    directory: Path,
    *,
    target: str = "phoenix",
    annotate: str | None = None,
    id_kind: str | None = None,
    force: bool = False,
) -> list[Path]:
    """Write ``annobridge.yaml`` and ``labels.xlsx`` (for ``target``) into ``directory``.

    :raises ConfigError: a file exists already and ``force`` is False, or a bad option.
    """
    text = starter_mapping(target, workbook="labels.xlsx", annotate=annotate, id_kind=id_kind)
    directory.mkdir(parents=True, exist_ok=True)
    mapping_path = directory / "annobridge.yaml"
    workbook_path = directory / "labels.xlsx"
    existing = [p for p in (mapping_path, workbook_path) if p.exists()]
    if existing and not force:
        names = ", ".join(str(p) for p in existing)
        raise ConfigError(f"{names} already exists; pass --force to overwrite")
    mapping_path.write_text(text, encoding="utf-8")
    write_template_workbook(workbook_path, load_mapping(mapping_path))
    return [mapping_path, workbook_path]


def init_gsheet_project(
    directory: Path,
    *,
    target: str = "phoenix",
    annotate: str | None = None,
    id_kind: str | None = None,
    force: bool = False,
) -> tuple[list[Path], str]:
    """Write ``annobridge.yaml`` for a Google Sheet into ``directory``; return it and the steps.

    The steps say how to create a service account and its key, share the sheet with it, lay
    out the header row, and point the mapping at the sheet. When a service-account key is
    already where annobridge looks, they name its e-mail (the address to share the sheet with).

    :raises ConfigError: the mapping exists already and ``force`` is False.
    """
    placeholder = "<paste the sheet's URL here>"
    excel = starter_mapping(target, workbook="labels.xlsx", annotate=annotate, id_kind=id_kind)
    text = (
        f"# annobridge mapping: SMEs label in a Google Sheet; the labels go to {target}.\n"
        "# Paths are relative to this file; ${VAR} and ${VAR:-default} expand from the "
        "environment.\n"
        "# Secrets never go here: the service account's key stays in its own file.\n"
        "source:\n"
        "  type: gsheet\n"
        "  # the sheet's URL from the browser's address bar (or just its key)\n"
        f"  spreadsheet: {placeholder}\n"
        "  worksheet: Labels          # the tab's title; or gid: <the number after #gid=>\n"
        "  header_row: 1\n"
        "  # The service account's JSON key. Without this line annobridge uses\n"
        "  # GOOGLE_APPLICATION_CREDENTIALS, then ~/.config/gspread/service_account.json.\n"
        "  # credentials: service_account.json\n"
        + excel[excel.index("header_row: 1\n") + len("header_row: 1\n") :]
    )
    directory.mkdir(parents=True, exist_ok=True)
    mapping_path = directory / "annobridge.yaml"
    if mapping_path.exists() and not force:
        raise ConfigError(f"{mapping_path} already exists; pass --force to overwrite")
    mapping_path.write_text(text, encoding="utf-8")
    sample = yaml.safe_load(
        text.replace(placeholder, "https://docs.google.com/spreadsheets/d/" + "k" * 44)
    )
    header = ",".join(template_columns(parse_mapping(sample, mapping_path)))

    default_key = credential_files(None, {})[0][0][0]
    found = service_account_email()
    if found:
        key_step = (
            f" 5. A key is already in place: {found[0]} (service account {found[1]}).\n"
            "    To use another, set  credentials: /path/to/key.json  in the mapping."
        )
        email = found[1]
    else:
        key_step = (
            " 5. Put the key where annobridge finds it, one of:\n"
            f"      mkdir -p {default_key.parent} && mv ~/Downloads/<the key>.json {default_key}\n"
            f"      set  credentials: /path/to/key.json  in {mapping_path}\n"
            "      export GOOGLE_APPLICATION_CREDENTIALS=/path/to/key.json"
        )
        email = "client_email in the key, like annobridge@<project>.iam.gserviceaccount.com"
    steps = "\n".join(
        [
            "Google Sheets setup (once, about five minutes):",
            " 1. Pick or create a Google Cloud project: "
            "https://console.cloud.google.com/projectcreate",
            " 2. Enable the Google Sheets API in it: "
            "https://console.cloud.google.com/apis/library/sheets.googleapis.com -> Enable",
            " 3. Create a service account: "
            "https://console.cloud.google.com/iam-admin/serviceaccounts",
            '    -> Create service account -> name it "annobridge" -> Done (it needs no roles).',
            " 4. Give it a key: open the service account -> Keys -> Add key -> Create new key "
            "-> JSON.",
            "    A .json file downloads. It is a password: never commit it or paste it anywhere.",
            key_step,
            f" 6. Share the sheet with the service account's e-mail ({email}):",
            "    open the sheet -> Share -> paste the e-mail -> Editor -> untick 'Notify people' "
            "-> Share.",
            "    Editor, not Viewer: annobridge writes each row's status back into the sheet.",
            ' 7. Name the tab "Labels" and paste this line into its cell A1, then choose',
            "    Data -> Split text to columns (one column per name):",
            f"      {header}",
            f" 8. Copy the sheet's URL from the browser's address bar into {mapping_path},",
            "    as the value of spreadsheet:",
            f" 9. Check it: annobridge validate {mapping_path}",
        ]
    )
    return [mapping_path], steps
