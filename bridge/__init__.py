"""annobridge: sync human labels from spreadsheets into LLM observability platforms.

>>> from bridge import load_mapping, sync
>>> result = sync(load_mapping("mappings/phoenix-excel.yaml"))
>>> result.counts["synced"], result.exit_code

The public surface is ``__all__`` below (checked both ways by tests/test_layers.py). Names
are imported on first use, so ``import bridge`` and ``annobridge --version`` stay fast: the
statistics, spreadsheet and HTTP libraries load only when a command needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {
    "AssignmentError": "bridge.errors",
    "AuthRefused": "bridge.errors",
    "BridgeError": "bridge.errors",
    "ChecksAnnotations": "bridge.targets.base",
    "ConfigError": "bridge.errors",
    "ExportResult": "bridge.exporting",
    "ExportSink": "bridge.sources.base",
    "ExportsRecords": "bridge.targets.base",
    "FileMedium": "bridge.sources.base",
    "JobResult": "bridge.pipeline",
    "MappingConfig": "bridge.mapping",
    "MappingError": "bridge.errors",
    "PlatformRules": "bridge.platform_rules",
    "PullsRules": "bridge.targets.base",
    "ReadsJudgeAnnotations": "bridge.targets.base",
    "RulesConflict": "bridge.errors",
    "Source": "bridge.sources.base",
    "SourceError": "bridge.errors",
    "SourcePlugin": "bridge.plugins",
    "SourceUnavailable": "bridge.errors",
    "SyncResult": "bridge.pipeline",
    "Target": "bridge.targets.base",
    "TargetPlugin": "bridge.plugins",
    "TargetUnreachable": "bridge.errors",
    "UnavailableError": "bridge.errors",
    "UnexpectedAnswer": "bridge.errors",
    "WritesOwnedTabs": "bridge.sources.base",
    "export": "bridge.api",
    "load_mapping": "bridge.api",
    "pull_rules": "bridge.api",
    "run_all": "bridge.api",
    "sync": "bridge.api",
    "validate": "bridge.api",
}

__all__ = [
    "AssignmentError",
    "AuthRefused",
    "BridgeError",
    "ChecksAnnotations",
    "ConfigError",
    "ExportResult",
    "ExportSink",
    "ExportsRecords",
    "FileMedium",
    "JobResult",
    "MappingConfig",
    "MappingError",
    "PlatformRules",
    "PullsRules",
    "ReadsJudgeAnnotations",
    "RulesConflict",
    "Source",
    "SourceError",
    "SourcePlugin",
    "SourceUnavailable",
    "SyncResult",
    "Target",
    "TargetPlugin",
    "TargetUnreachable",
    "UnavailableError",
    "UnexpectedAnswer",
    "WritesOwnedTabs",
    "export",
    "load_mapping",
    "pull_rules",
    "run_all",
    "sync",
    "validate",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'bridge' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from bridge.api import export, load_mapping, pull_rules, run_all, sync, validate
    from bridge.errors import (
        AssignmentError,
        AuthRefused,
        BridgeError,
        ConfigError,
        MappingError,
        RulesConflict,
        SourceError,
        SourceUnavailable,
        TargetUnreachable,
        UnavailableError,
        UnexpectedAnswer,
    )
    from bridge.exporting import ExportResult
    from bridge.mapping import MappingConfig
    from bridge.pipeline import JobResult, SyncResult
    from bridge.platform_rules import PlatformRules
    from bridge.plugins import SourcePlugin, TargetPlugin
    from bridge.sources.base import ExportSink, FileMedium, Source, WritesOwnedTabs
    from bridge.targets.base import (
        ChecksAnnotations,
        ExportsRecords,
        PullsRules,
        ReadsJudgeAnnotations,
        Target,
    )
