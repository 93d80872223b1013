"""Notes: an annotation entry's ``note_column``, sent as a Phoenix note on the same record.

Measured on Phoenix 20.26.1 (docs/platform-notes.md, "Phoenix", notes):

- ``POST /v1/{span,trace,session}_notes`` takes one note a request; without an identifier
  each call adds a new note, with one it upserts on (record, name 'note', identifier). So
  every note annobridge sends carries ``annobridge:<annotator>:<annotation name>:<record id>``
  (a document's note, which Phoenix keeps on its span: ``...:<span id>:<position>``). A rerun
  or a retry never adds a second copy; an edited note replaces the text in place.
- A note cannot be patched or deleted by record over REST; the filter DELETE
  ``/v1/projects/{p}/{kind}_annotations?name=note&identifier=...&delete_all=true`` deletes
  every note with that identifier in the whole project. The record id in the identifier makes
  it unique to one record and one annotation entry, so an emptied note cell deletes exactly
  the note this row sent, and nothing another annotator or the app wrote.

A note is sent only once its annotation is confirmed; a note Phoenix refuses makes the row
rejected (or failed, retried next run) with the reason, and the annotation stays synced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bridge.errors import TargetUnreachable
from bridge.records import NOTE_EXTRA, Annotation, Outcome, Status
from bridge.targets.phoenix.client import ID_FIELD, PhoenixClient, detail


def note_kind(kind: str) -> str:
    """Where a note goes: a document's note goes on its span (Phoenix has no document notes)."""
    return "span" if kind == "document" else kind


def note_of(a: Annotation) -> str | None:
    """The note of an annotation: its text, "" when the note cell is empty, None without a
    note_column."""
    note = a.extra.get(NOTE_EXTRA)
    return None if note is None else str(note)


def note_identifier(a: Annotation, position: int | None = None) -> str:
    """``annobridge:<annotator>:<name>:<record id>`` (``:<position>`` for a document)."""
    ident = f"{a.identifier}:{a.name}:{a.target_id}"
    return ident if position is None else f"{ident}:{position}"


def note_payload(a: Annotation, kind: str, position: int | None = None) -> dict[str, Any]:
    """The body of the note's POST."""
    where = note_kind(kind)
    return {
        "data": {
            ID_FIELD[where]: a.target_id,
            "note": note_of(a),
            "identifier": note_identifier(a, position),
        }
    }


def send_notes(
    client: PhoenixClient,
    kind: str,
    annotations: Sequence[Annotation],
    outcomes: dict[int, Outcome],
    position_of: Callable[[Annotation], int | None],
) -> None:
    """Send (or delete) the note of every confirmed annotation that has a note_column;
    ``outcomes`` (by ``id(annotation)``) is updated when a note is refused, or not sent
    because Phoenix stopped answering (failed: the next run sends it)."""
    where = note_kind(kind)
    for n, a in enumerate(annotations):
        try:
            _send_note(client, kind, where, a, outcomes, position_of)
        except TargetUnreachable as exc:
            for b in annotations[n:]:
                found = outcomes.get(id(b))
                if note_of(b) is not None and found is not None and found.status == Status.SYNCED:
                    outcomes[id(b)] = Outcome.failed(
                        f"the annotation is stored, but Phoenix stopped answering before its "
                        f"note was sent ({exc})"
                    )
            return


def _send_note(
    client: PhoenixClient,
    kind: str,
    where: str,
    a: Annotation,
    outcomes: dict[int, Outcome],
    position_of: Callable[[Annotation], int | None],
) -> None:
    """Send or delete one annotation's note; a refusal settles ``outcomes``."""
    note = note_of(a)
    outcome = outcomes.get(id(a))
    if note is None or outcome is None or outcome.status != Status.SYNCED:
        return
    position = position_of(a) if kind == "document" else None
    if note:
        response = client.call("POST", f"/v1/{where}_notes", json=note_payload(a, kind, position))
        ok = response.status_code == 200
        what = "its note"
    elif a.is_update:
        # The row was synced before and its note cell is empty now: the note it may have
        # sent goes (no match is fine: 204 either way).
        response = client.call(
            "DELETE",
            f"{client.project_path}/{where}_annotations",
            params={
                "name": "note",
                "identifier": note_identifier(a, position),
                "delete_all": "true",
            },
        )
        ok = response.status_code in (200, 204)
        what = "the deletion of its emptied note"
    else:
        return
    if not ok:
        code = response.status_code
        outcomes[id(a)] = Outcome(
            Status.REJECTED if 400 <= code < 500 else Status.FAILED,
            f"the annotation is stored, but Phoenix refused {what} ({code}: "
            f"{detail(response.text)})",
            outcome.remote_id,
        )
