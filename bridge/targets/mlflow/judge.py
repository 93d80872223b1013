"""An LLM judge's assessments on MLflow, read back to compare them with the humans'.

Assessments come with each trace's info (``POST /traces/batchGetInfos``; trace search cannot
select by source: docs/platform-notes.md, "MLflow"), so the ones named ``name`` with source
type LLM_JUDGE are kept; invalid (overridden) ones and failed judge runs (an ``error`` and no
value) are left out. Several judges on one trace: the one updated last is taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.records import JudgeLabel, finite_number
from bridge.targets.base import chunks
from bridge.targets.mlflow.client import API, IDS_PER_LOOKUP, MlflowClient
from bridge.targets.mlflow.ids import by_request_id


def _label(value: Any) -> tuple[str | None, float | None]:
    if isinstance(value, bool):
        return ("true" if value else "false"), None
    if isinstance(value, int | float):
        return None, finite_number(value)
    if isinstance(value, list):
        return ",".join(str(v) for v in value), None
    return (None if value is None else str(value)), None


def _infos(client: MlflowClient, trace_ids: Sequence[str]) -> list[dict[str, Any]]:
    infos: list[dict[str, Any]] = []
    for part in chunks(list(trace_ids), IDS_PER_LOOKUP):
        response = client.call("POST", f"{API}/traces/batchGetInfos", json={"trace_ids": part})
        if response.status_code == 200:
            infos.extend(client.items(response, "trace_infos")[0])
    return infos


def judge_annotations(
    client: MlflowClient, id_kind: str, name: str, record_ids: Sequence[str]
) -> dict[str, JudgeLabel]:
    """By the sheet's record id: a trace id, or the app's client_request_id."""
    if id_kind == "client_request_id":
        found_infos, _ = by_request_id(client, list(record_ids))
        by_record = {rid: info for rid, info in found_infos.items()}
    else:
        by_record = {str(i.get("trace_id")): i for i in _infos(client, record_ids)}
    found: dict[str, JudgeLabel] = {}
    for rid, info in by_record.items():
        best: tuple[str, dict[str, Any]] | None = None
        for a in info.get("assessments") or []:
            source = a.get("source") or {}
            feedback = a.get("feedback")
            if (
                a.get("assessment_name") != name
                or source.get("source_type") != "LLM_JUDGE"
                or a.get("valid") is False
                or not isinstance(feedback, dict)
                or feedback.get("value") is None
            ):
                continue
            stamp = str(a.get("last_update_time") or a.get("create_time") or "")
            if best is None or stamp >= best[0]:
                best = (stamp, a)
        if best is None:
            continue
        a = best[1]
        label, score = _label(a["feedback"]["value"])
        found[rid] = JudgeLabel(
            record_id=rid,
            label=label,
            score=score,
            explanation=str(a.get("rationale") or ""),
            judge=str((a.get("source") or {}).get("source_id") or ""),
        )
    return found
