"""annobridge: sync human labels from spreadsheets into LLM observability platforms.

>>> from bridge import load_mapping, sync
>>> result = sync(load_mapping("mappings/phoenix-excel.yaml"))
>>> result.counts["synced"], result.exit_code
"""

from __future__ import annotations

from typing import Any

from bridge.errors import (
    AuthRefused,
    BridgeError,
    ConfigError,
    MappingError,
    SourceError,
    SourceUnavailable,
    TargetUnreachable,
    UnavailableError,
)
from bridge.mapping import MappingConfig, load_mapping
from bridge.pipeline import SyncResult, run

__version__ = "0.1.0"

__all__ = [
    "AuthRefused",
    "BridgeError",
    "ConfigError",
    "MappingConfig",
    "MappingError",
    "SourceError",
    "SourceUnavailable",
    "SyncResult",
    "TargetUnreachable",
    "UnavailableError",
    "load_mapping",
    "sync",
    "validate",
]


def sync(mapping: MappingConfig, **kwargs: Any) -> SyncResult:
    """Validate, send new and edited labels, write statuses back. See ``pipeline.run``."""
    return run(mapping, **kwargs)


def validate(mapping: MappingConfig, **kwargs: Any) -> SyncResult:
    """Read and check every row; send nothing, write nothing."""
    return run(mapping, send=False, **kwargs)
