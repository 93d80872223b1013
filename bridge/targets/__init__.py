"""Where annotations go: one module per platform, one line each in TARGETS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from bridge.errors import ConfigError
from bridge.mapping import Mapping
from bridge.targets.base import Target

_C = TypeVar("_C")


def _config(mapping: Mapping, model: type[_C]) -> _C:
    """The mapping's target section, as the model its type names."""
    config = mapping.target
    if not isinstance(config, model):  # pragma: no cover - TARGETS is keyed by type
        raise ConfigError(f"target type '{config.type}' does not match {model.__name__}")
    return config


def _phoenix(mapping: Mapping, **kwargs: Any) -> Target:
    from bridge.mapping import PhoenixTarget as PhoenixConfig
    from bridge.targets.phoenix import PhoenixTarget

    return PhoenixTarget(_config(mapping, PhoenixConfig), **kwargs)


def _arize(mapping: Mapping, **kwargs: Any) -> Target:
    from bridge.mapping import ArizeTarget as ArizeConfig
    from bridge.targets.arize import ArizeTarget

    names = [a.name for a in mapping.annotations]
    return ArizeTarget(_config(mapping, ArizeConfig), names=names, **kwargs)


def _log10(mapping: Mapping, **kwargs: Any) -> Target:
    from bridge.mapping import Log10Target as Log10Config
    from bridge.targets.log10 import Log10Target

    return Log10Target(_config(mapping, Log10Config), **kwargs)


def _mlflow(mapping: Mapping, **kwargs: Any) -> Target:
    from bridge.mapping import MlflowTarget as MlflowConfig
    from bridge.targets.mlflow import MlflowTarget

    config = _config(mapping, MlflowConfig)
    return MlflowTarget(config, specs=mapping.annotations, mapping_path=mapping.path, **kwargs)


TARGETS: dict[str, Callable[..., Target]] = {
    "phoenix": _phoenix,
    "arize": _arize,
    "log10": _log10,
    "mlflow": _mlflow,
}

__all__ = ["TARGETS", "Target", "open_target"]


def open_target(mapping: Mapping, **kwargs: Any) -> Target:
    """The Target a mapping describes."""
    return TARGETS[mapping.target.type](mapping, **kwargs)
