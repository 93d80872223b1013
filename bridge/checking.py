"""``validate --online``: the rows checked, then the sheet and the platform contacted with the
configured credentials, so a wrong URL, key or sharing shows before the first sync.

Each part is tried even when another fails: a sheet that cannot be read does not hide a key
the platform refuses. Nothing is sent and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.errors import EXIT_OK, BridgeError
from bridge.mapping import MappingConfig
from bridge.pipeline import SyncResult, run
from bridge.registry import open_source, open_target
from bridge.sources.base import Source
from bridge.targets.base import Target, describe


@dataclass(frozen=True)
class Check:
    """One thing contacted: the sheet or the platform; ``error`` is None when it worked."""

    part: str  # "sheet" | "platform"
    where: str
    detail: str = ""
    error: BridgeError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.error is None else self.error.exit_code

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"part": self.part, "where": self.where, "ok": self.ok}
        if self.error is None:
            out["detail"] = self.detail
        else:
            out["error"] = error_json(self.error)
        return out


@dataclass
class OnlineReport:
    """The validation of the rows (None when the sheet or platform could not be opened) and
    what each contact found."""

    mapping: str
    result: SyncResult | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        codes = [c.exit_code for c in self.checks]
        if self.result is not None:
            codes.append(self.result.exit_code)
        return max(codes, default=EXIT_OK)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = self.result.to_json() if self.result else {"mapping": self.mapping}
        out["online"] = [c.to_json() for c in self.checks]
        out["exit_code"] = self.exit_code
        return out


def error_json(exc: BridgeError) -> dict[str, Any]:
    """``{"type", "code", "message"}``: the class, its stable code, the message."""
    return {"type": type(exc).__name__, "code": exc.code, "message": str(exc)}


def _where(target: Target) -> str:
    fields = describe(target)
    text = f"{fields['platform']} at {fields['url']}" if fields["url"] else fields["platform"]
    return text + (f" (project {fields['project']})" if fields["project"] else "")


def validate_online(
    mapping: MappingConfig, *, source: Source | None = None, target: Target | None = None
) -> OnlineReport:
    """Validate the rows, then contact the sheet and the platform; report each part.

    :param source: a sheet to use instead of the mapping's (tests, embedding).
    :param target: a target to use instead of the mapping's.
    """
    report = OnlineReport(mapping=str(mapping.path or ""))
    own_source, own_target = source is None, target is None
    sheet_error: BridgeError | None = None
    try:
        if source is None:
            try:
                source = open_source(mapping)
            except BridgeError as exc:
                sheet_error = exc
        if target is None:
            try:
                target = open_target(mapping)
            except BridgeError as exc:
                report.checks.append(Check("platform", mapping.target.type, error=exc))
        if source is not None and target is not None:
            try:
                report.result = run(mapping, send=False, source=source, target=target)
            except BridgeError as exc:
                sheet_error = exc
        if source is not None and sheet_error is None:
            try:
                source.check_writable()
            except BridgeError as exc:
                sheet_error = exc
        where = source.label if source is not None else mapping.source.type
        if sheet_error is not None:
            report.checks.insert(0, Check("sheet", where, error=sheet_error))
        elif report.result is not None:
            rows = report.result.rows
            detail = f"read {rows} {'row' if rows == 1 else 'rows'}; writable"
            report.checks.insert(0, Check("sheet", where, detail=detail))
        else:
            report.checks.insert(0, Check("sheet", where, detail="opened; rows not read"))
        if target is not None:
            try:
                target.check()
            except BridgeError as exc:
                report.checks.append(Check("platform", _where(target), error=exc))
            else:
                detail = "reachable; credentials accepted"
                report.checks.append(Check("platform", _where(target), detail=detail))
        return report
    finally:
        if own_target and target is not None:
            target.close()
        if own_source and source is not None:
            source.close()
