"""Links to Phoenix records, for the Disagreements tab: the redirect routes of Phoenix's own
web app, which need no lookup here (docs/platform-notes.md, "Phoenix", "Links to records").

``{base_url}/redirects/spans/{span id}`` (and ``traces/{trace id}``, ``sessions/{session
id}``) is a route of the web app whose loader finds the record by its OpenTelemetry id (or
session id) through GraphQL and goes on to the record's page in its project, as Phoenix's own
pages link to records. A document annotation is on its span: the span's link.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence

REDIRECTS = {"span": "spans", "document": "spans", "trace": "traces", "session": "sessions"}
# what urllib.parse.quote leaves as it is (safe=""): most ids (OTel ids are hex) need no
# quoting, and the check is a fifth of quote's time (10^4 disputed records)
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]+")


def record_links(base_url: str, kind: str, record_ids: Sequence[str]) -> dict[str, str]:
    """The redirect link of each record (by id), in a server at ``base_url`` (with any root
    path); none for an empty id or a kind without a route."""
    route = REDIRECTS.get(kind)
    if route is None:
        return {}
    prefix = f"{base_url.rstrip('/')}/redirects/{route}/"
    plain, quote = _UNRESERVED.fullmatch, urllib.parse.quote
    return {rid: prefix + (rid if plain(rid) else quote(rid, safe="")) for rid in record_ids if rid}
