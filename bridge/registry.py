"""Type name -> adapter, for sources, export sinks and targets; then entry-point plug-ins.

One line per built-in medium or platform. Each factory imports its adapter when it is
called, not before: ``annobridge --help`` and ``validate`` never pay for the platforms and
media a run does not use. The only lazy imports of the package live here, on purpose.
A ``type:`` that is not built in is looked up among the installed plug-ins
(``bridge.plugins``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from bridge.errors import ConfigError
from bridge.mapping import MappingConfig
from bridge.plugins import source_plugin, target_plugin
from bridge.sources.base import ExportSink, Source
from bridge.targets.base import Target

_C = TypeVar("_C")


def _config(section: Any, model: type[_C]) -> _C:
    if not isinstance(section, model):  # pragma: no cover - the tables are keyed by type
        raise ConfigError(f"'{section.type}' does not match {model.__name__}")
    return section


def _phoenix(mapping: MappingConfig, **options: Any) -> Target:
    from bridge.targets.phoenix.config import PhoenixConfig
    from bridge.targets.phoenix.target import PhoenixTarget

    return PhoenixTarget(_config(mapping.target, PhoenixConfig), **options)


def _arize(mapping: MappingConfig, **options: Any) -> Target:
    from bridge.targets.arize.config import ArizeConfig
    from bridge.targets.arize.target import ArizeTarget

    names = [a.name for a in mapping.annotations]
    return ArizeTarget(_config(mapping.target, ArizeConfig), names=names, **options)


def _log10(mapping: MappingConfig, **options: Any) -> Target:
    from bridge.targets.log10.config import Log10Config
    from bridge.targets.log10.target import Log10Target

    return Log10Target(_config(mapping.target, Log10Config), **options)


def _mlflow(mapping: MappingConfig, **options: Any) -> Target:
    from bridge.targets.mlflow.config import MlflowConfig
    from bridge.targets.mlflow.target import MlflowTarget

    config = _config(mapping.target, MlflowConfig)
    return MlflowTarget(config, specs=mapping.annotations, mapping_path=mapping.path, **options)


def _excel(mapping: MappingConfig) -> Source:
    from bridge.sources.excel.config import ExcelConfig
    from bridge.sources.excel.tabs import ExcelWorkbookSource

    cfg = _config(mapping.source, ExcelConfig)
    return ExcelWorkbookSource(cfg.path, cfg.worksheet, cfg.header_row)


def _excel_sink(mapping: MappingConfig) -> ExportSink:
    from bridge.sources.excel.config import ExcelConfig
    from bridge.sources.excel.export_sink import ExcelExportSink

    cfg = _config(mapping.source, ExcelConfig)
    return ExcelExportSink(cfg.path, cfg.worksheet, cfg.header_row)


def _csv(mapping: MappingConfig) -> Source:
    from bridge.sources.csv.config import CsvConfig
    from bridge.sources.csv.source import CsvSource

    cfg = _config(mapping.source, CsvConfig)
    return CsvSource(cfg.path, cfg.header_row, cfg.delimiter, cfg.encoding)


def _gsheet(mapping: MappingConfig) -> Any:
    from bridge.sources.gsheets.config import GSheetConfig
    from bridge.sources.gsheets.source import GSheetsSource

    cfg = _config(mapping.source, GSheetConfig)
    return GSheetsSource(
        cfg.spreadsheet,
        cfg.worksheet,
        cfg.header_row,
        cfg.credentials,
        gid=cfg.gid,
        timeout=cfg.timeout,
    )


TARGETS: dict[str, Callable[..., Target]] = {
    "phoenix": _phoenix,
    "arize": _arize,
    "log10": _log10,
    "mlflow": _mlflow,
}
SOURCES: dict[str, Callable[[MappingConfig], Source]] = {
    "excel": _excel,
    "csv": _csv,
    "gsheet": _gsheet,
}
# The media export can append to; a Google Sheet is synced and exported by the same adapter.
SINKS: dict[str, Callable[[MappingConfig], ExportSink]] = {
    "excel": _excel_sink,
    "gsheet": _gsheet,
}
NO_SINK = {
    "csv": (
        "export writes into an Excel workbook or a Google Sheet (with dropdowns); a CSV "
        "file has none: use source type excel or gsheet"
    ),
}


def open_target(mapping: MappingConfig, **options: Any) -> Target:
    """The Target a mapping describes (options go to the adapter: session, environ, ...)."""
    kind = mapping.target.type
    factory = TARGETS.get(kind)
    if factory is not None:
        return factory(mapping, **options)
    plugin = target_plugin(kind)
    if plugin is None:  # pragma: no cover - load_mapping refuses unknown types first
        raise ConfigError(f"no platform '{kind}' is installed")
    return plugin.open(mapping, **options)


def open_source(mapping: MappingConfig) -> Source:
    """The Source a mapping describes."""
    kind = mapping.source.type
    factory = SOURCES.get(kind)
    if factory is not None:
        return factory(mapping)
    plugin = source_plugin(kind)
    if plugin is None:  # pragma: no cover - load_mapping refuses unknown types first
        raise ConfigError(f"no medium '{kind}' is installed")
    return plugin.open(mapping)


def open_sink(mapping: MappingConfig) -> ExportSink:
    """The mapping's sheet, with the methods export needs."""
    kind = mapping.source.type
    factory = SINKS.get(kind)
    if factory is not None:
        return factory(mapping)
    if kind in NO_SINK:
        raise ConfigError(NO_SINK[kind])
    plugin = source_plugin(kind)
    if plugin is None or plugin.open_sink is None:
        raise ConfigError(f"source type '{kind}' cannot take exported rows")
    return plugin.open_sink(mapping)
