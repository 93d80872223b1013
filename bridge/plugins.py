"""Plug-ins: platforms and media added from outside this repository, by entry point.

A distribution declares, in its ``pyproject.toml``::

    [project.entry-points."annobridge.targets"]
    acme = "acme_annobridge:PLUGIN"      # PLUGIN = TargetPlugin(config=AcmeConfig, open=...)

    [project.entry-points."annobridge.sources"]
    notion = "notion_annobridge:PLUGIN"  # PLUGIN = SourcePlugin(config=..., open=...)

The entry point's name is the ``type:`` a mapping writes. The config model (a
``TargetConfigBase`` / ``SourceConfigBase``) validates the mapping's section with the same
"unknown key, did you mean" messages as the built-in ones; ``open`` builds the adapter from the
whole mapping. Entry points are read once, only when a mapping names a type that is not built
in, so start-up never pays for them (the way sqlite-utils loads its plug-ins lazily).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from bridge.configs import SourceConfigBase, TargetConfigBase
from bridge.errors import ConfigError
from bridge.sources.base import ExportSink, Source
from bridge.targets.base import Target

TARGET_GROUP = "annobridge.targets"
SOURCE_GROUP = "annobridge.sources"


@dataclass(frozen=True)
class TargetPlugin:
    """A platform: its mapping section's model, and ``open(mapping, **options) -> Target``."""

    config: type[TargetConfigBase]
    open: Callable[..., Target]


@dataclass(frozen=True)
class SourcePlugin:
    """A medium: its model, ``open(mapping) -> Source`` and, when it takes exported rows,
    ``open_sink(mapping) -> ExportSink``."""

    config: type[SourceConfigBase]
    open: Callable[..., Source]
    open_sink: Callable[..., ExportSink] | None = None


@functools.cache
def _group(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=group)}


def _load(group: str, name: str, kind: type[Any]) -> Any:
    ep = _group(group).get(name)
    if ep is None:
        return None
    try:
        plugin = ep.load()
    except Exception as exc:  # a broken plug-in must not look like a bug of annobridge
        raise ConfigError(
            f"the plug-in '{name}' ({ep.value}, entry point group {group}) cannot be loaded: "
            f"{type(exc).__name__}: {exc}; reinstall or remove the package that provides it"
        ) from exc
    if not isinstance(plugin, kind):
        raise ConfigError(
            f"the plug-in '{name}' ({ep.value}) is not a {kind.__name__}; its entry point must "
            f"name a bridge.plugins.{kind.__name__}"
        )
    return plugin


def target_plugin(name: str) -> TargetPlugin | None:
    """The installed plug-in platform of that ``type:``, if any."""
    found: TargetPlugin | None = _load(TARGET_GROUP, name, TargetPlugin)
    return found


def source_plugin(name: str) -> SourcePlugin | None:
    """The installed plug-in medium of that ``type:``, if any."""
    found: SourcePlugin | None = _load(SOURCE_GROUP, name, SourcePlugin)
    return found


def plugin_names(group: str) -> list[str]:
    return sorted(_group(group))
