"""Taking back assessments on MLflow when an SME clears them in the sheet.

The assessment a row sent has the id annobridge chose for it (``values.assessment_id``:
trace, name, annotator), so it is deleted by that id and nothing else: another annotator's
assessment, or a judge's, on the same trace is never touched. MLflow answers 200 ``{}`` to a
DELETE whatever happened, even for an unknown id or a wrong trace
(docs/platform-notes.md, "MLflow"), so each one is read before (was it there?) and after
(is it gone?).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence

from bridge.records import Annotation, Outcome
from bridge.targets.mlflow import ids
from bridge.targets.mlflow.client import API, MlflowClient, error_message
from bridge.targets.mlflow.values import assessment_id


def _path(trace_id: str, aid: str) -> str:
    tid, one = urllib.parse.quote(trace_id, safe=""), urllib.parse.quote(aid, safe="")
    return f"{API}/traces/{tid}/assessments/{one}"


def retract(client: MlflowClient, id_kind: str, annotations: Sequence[Annotation]) -> list[Outcome]:
    traces, refused = ids.resolve(client, id_kind, annotations)
    out: list[Outcome] = []
    for i, a in enumerate(annotations):
        if i in refused:
            # the request id matches no trace (or several): nothing of this row can be there
            out.append(Outcome.ok(""))
            continue
        info = traces.get(a.target_id)
        trace_id = str(info["trace_id"]) if info else a.target_id
        aid = assessment_id(trace_id, a.name, a.identifier)
        before = client.call("GET", _path(trace_id, aid))
        if before.status_code == 404:
            out.append(Outcome.ok(""))  # never sent, or taken back already
            continue
        if before.status_code != 200:
            out.append(_refused(before.status_code, error_message(before)))
            continue
        gone = client.call("DELETE", _path(trace_id, aid))
        if gone.status_code != 200:
            out.append(_refused(gone.status_code, error_message(gone)))
            continue
        after = client.call("GET", _path(trace_id, aid))
        if after.status_code == 404:
            out.append(Outcome.ok(aid))
        else:
            out.append(
                Outcome.failed(
                    f"MLflow answered the delete of assessment {aid} on trace {trace_id} but "
                    f"still shows it ({after.status_code})"
                )
            )
    return out


def _refused(status: int, detail: str) -> Outcome:
    if 400 <= status < 500:
        return Outcome.rejected(f"MLflow answered {status}: {detail}")
    return Outcome.failed(f"MLflow answered {status}: {detail}")
