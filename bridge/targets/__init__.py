"""Where annotations go: one module per platform, one line each in TARGETS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.mapping import Mapping
from bridge.targets.base import Target


def _phoenix(mapping: Mapping, **kwargs: Any) -> Target:
    from bridge.targets.phoenix import PhoenixTarget

    return PhoenixTarget(mapping.target, **kwargs)


TARGETS: dict[str, Callable[..., Target]] = {
    "phoenix": _phoenix,
}

__all__ = ["TARGETS", "Target", "open_target"]


def open_target(mapping: Mapping, **kwargs: Any) -> Target:
    """The Target a mapping describes."""
    return TARGETS[mapping.target.type](mapping, **kwargs)
