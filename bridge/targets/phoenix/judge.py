"""An LLM judge's annotations on Phoenix, read back to compare them with the humans'.

``GET /v1/projects/{p}/{kind}_annotations`` has no annotator-kind filter (the parameter is
ignored: docs/platform-notes.md, "Phoenix"), so every annotation of the name is read and the
ones with ``annotator_kind`` LLM are kept. Two judges' annotations of one name on one record
(two identifiers): the one updated last is taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.records import JudgeLabel, finite_number
from bridge.targets.phoenix.client import ID_FIELD, PhoenixClient


def judge_annotations(
    client: PhoenixClient, kind: str, name: str, record_ids: Sequence[str]
) -> dict[str, JudgeLabel]:
    newest: dict[str, tuple[str, dict[str, Any]]] = {}
    for row in client.annotations(kind, list(record_ids), [name], strict=True):
        if row.get("annotator_kind") != "LLM" or row.get("name") != name:
            continue
        rid = str(row.get(ID_FIELD[kind], ""))
        stamp = str(row.get("updated_at") or row.get("created_at") or "")
        if rid and (rid not in newest or stamp >= newest[rid][0]):
            newest[rid] = (stamp, row)
    found: dict[str, JudgeLabel] = {}
    for rid, (_, row) in newest.items():
        result = row.get("result") or {}
        label = result.get("label")
        found[rid] = JudgeLabel(
            record_id=rid,
            label=None if label is None else str(label),
            score=finite_number(result.get("score")),
            explanation=str(result.get("explanation") or ""),
            judge=str(row.get("identifier") or ""),
        )
    return found
