"""Where rows come from and where status goes back: one module per medium."""

from __future__ import annotations

from bridge.errors import ConfigError
from bridge.mapping import CsvSource as CsvConfig
from bridge.mapping import ExcelSource as ExcelConfig
from bridge.mapping import GSheetSource as GSheetConfig
from bridge.mapping import Mapping
from bridge.sources.base import ReadSpec, Source

__all__ = ["ReadSpec", "Source", "open_source"]


def open_source(mapping: Mapping) -> Source:
    """The Source a mapping describes."""
    cfg = mapping.source
    if isinstance(cfg, ExcelConfig):
        from bridge.sources.excel import ExcelSource

        return ExcelSource(cfg.path, cfg.worksheet, cfg.header_row)
    if isinstance(cfg, CsvConfig):
        from bridge.sources.csv import CsvSource

        return CsvSource(cfg.path, cfg.header_row, cfg.delimiter, cfg.encoding)
    if isinstance(cfg, GSheetConfig):
        from bridge.sources.gsheets import GSheetsSource

        return GSheetsSource(
            cfg.spreadsheet,
            cfg.worksheet,
            cfg.header_row,
            cfg.credentials,
            gid=cfg.gid,
            timeout=cfg.timeout,
        )
    raise ConfigError(
        f"source type '{cfg.type}' is not available in this version; use excel, csv or gsheet"
    )
