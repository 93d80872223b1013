"""`annobridge init`: a starter mapping and a template workbook built from its rules."""

from __future__ import annotations

from pathlib import Path

import openpyxl
from openpyxl.styles import Font, PatternFill
from openpyxl.worksheet.datavalidation import DataValidation

from bridge.errors import ConfigError
from bridge.mapping import Mapping, load_mapping
from bridge.sources._table import column_letter

STARTER_MAPPING = """\
# annobridge mapping: where the labels are, where they go, and the rules they follow.
# Paths are relative to this file; ${{VAR}} and ${{VAR:-default}} expand from the environment.
# Secrets never go here: set PHOENIX_API_KEY in the environment when your Phoenix needs one.
source:
  type: excel
  path: {workbook}
  worksheet: Labels
  header_row: 1
target:
  type: phoenix
  url: ${{PHOENIX_BASE_URL:-http://127.0.0.1:6006}}
  annotate: span            # span | trace | session
  project: ${{PHOENIX_PROJECT_NAME:-default}}
annotations:
  - name: correctness
    id_column: span_id
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

CONTEXT_COLUMNS = ["input", "output"]
MAX_LIST_VALIDATION = 255  # Excel refuses list validations longer than 255 characters


def template_columns(mapping: Mapping) -> list[str]:
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
    return cols + [c for c in mapping.status.columns().names() if c not in cols]


def write_template_workbook(path: Path, mapping: Mapping, rows: int = 1000) -> None:
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


def init_project(directory: Path, *, force: bool = False) -> list[Path]:
    """Write ``annobridge.yaml`` and ``labels.xlsx`` into ``directory``.

    :raises ConfigError: a file exists already and ``force`` is False.
    """
    directory.mkdir(parents=True, exist_ok=True)
    mapping_path = directory / "annobridge.yaml"
    workbook_path = directory / "labels.xlsx"
    existing = [p for p in (mapping_path, workbook_path) if p.exists()]
    if existing and not force:
        names = ", ".join(str(p) for p in existing)
        raise ConfigError(f"{names} already exists; pass --force to overwrite")
    mapping_path.write_text(STARTER_MAPPING.format(workbook=workbook_path.name), encoding="utf-8")
    write_template_workbook(workbook_path, load_mapping(mapping_path))
    return [mapping_path, workbook_path]
