"""A plug-in medium and platform for annobridge, outside the bridge package.

``jsonrows``: a sheet kept as a JSON list of row objects. ``acme``: a platform that keeps
annotations in a JSON file, upserting by (record, name, identifier). Installed by the tests
as a distribution with two entry points (see tests/test_plugins.py); nothing in bridge/
knows about it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from bridge.configs import OTEL_ID_PATTERNS, SourceConfigBase, TargetConfigBase
from bridge.plugins import SourcePlugin, TargetPlugin
from bridge.records import Annotation, Outcome, Row, StatusUpdate, WriteReport
from bridge.sources.base import ReadSpec, Source
from bridge.targets.base import Progress, Target


class JsonRowsConfig(SourceConfigBase):
    type: Literal["jsonrows"]
    path: Path


class JsonRowsSource(Source):
    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def label(self) -> str:
        return self.path.name

    def _rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(self.path.read_text(encoding="utf-8"))
        return rows

    def read(self, spec: ReadSpec) -> list[Row]:
        status_names = spec.status.names()
        out = []
        for i, raw in enumerate(self._rows()):
            key = tuple(str(raw.get(c, "")) for c in spec.key_columns)
            values = {c: raw.get(c) for c in spec.columns}
            status = {c: raw[c] for c in status_names if c in raw}
            out.append(Row(i + 2, values, key, 0, status))
        return out

    def check_writable(self) -> None:
        pass

    def write_status(self, spec: ReadSpec, updates: Sequence[StatusUpdate]) -> WriteReport:
        rows = self._rows()
        by_key = {tuple(str(r.get(c, "")) for c in spec.key_columns): r for r in rows}
        report = WriteReport()
        for u in updates:
            row = by_key.get(u.key)
            if row is None:
                report.vanished.append(u)
                continue
            row.update(u.values)
            report.written += 1
        self.path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
        return report

    def close(self) -> None:
        pass


class AcmeConfig(TargetConfigBase):
    type: Literal["acme"]
    store: Path
    ID_PATTERNS: ClassVar[dict[str, tuple[str, str]]] = OTEL_ID_PATTERNS

    def record_kind(self) -> str:
        return "span"


class AcmeTarget(Target):
    name = "Acme"
    kind = "span"

    def __init__(self, config: AcmeConfig, base: Path) -> None:
        self.store = config.store if config.store.is_absolute() else base / config.store

    def fingerprint(self) -> str:
        return f"acme|{self.store.name}"

    def payload(self, annotation: Annotation) -> dict[str, Any]:
        return annotation.content()

    def check(self) -> None:
        pass

    def send(
        self, annotations: Sequence[Annotation], progress: Progress | None = None
    ) -> list[Outcome]:
        held = json.loads(self.store.read_text()) if self.store.exists() else {}
        outcomes = []
        for a in annotations:
            key = f"{a.target_id}|{a.name}|{a.identifier}"
            held[key] = {"label": a.label, "score": a.score, "explanation": a.explanation}
            outcomes.append(Outcome.ok(key))
        self.store.write_text(json.dumps(held, indent=1, sort_keys=True))
        if progress is not None:
            progress(len(annotations))
        return outcomes

    def close(self) -> None:
        pass


def _open_target(mapping: Any, **options: Any) -> Target:
    return AcmeTarget(mapping.target, Path(mapping.path).parent)


def _open_source(mapping: Any) -> Source:
    return JsonRowsSource(mapping.source.path)


TARGET = TargetPlugin(config=AcmeConfig, open=_open_target)
SOURCE = SourcePlugin(config=JsonRowsConfig, open=_open_source)
NOT_A_PLUGIN = "this entry point names a string, not a TargetPlugin"
