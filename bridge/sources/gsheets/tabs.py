"""Tabs annobridge owns in a Google Sheet (``Agreement``, ``Disagreements``): replaced whole.

The tab is added when missing (``addSheet``, sized to the rows), otherwise cleared
(``values.clear``) and grown when the rows do not fit; then the rows are written ``RAW`` in
one ``values.update``, so no cell becomes a formula. A tab of that name that holds something
else in A1 than annobridge writes there is refused rather than overwritten: it is the SMEs'.
About four requests per tab; no other tab is read or written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.errors import SourceError
from bridge.records import safe_text
from bridge.sources.base import WritesOwnedTabs
from bridge.sources.gsheets.data import quote_title
from bridge.sources.gsheets.worksheet import Worksheet


def _cell(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return safe_text(value)
    return value


class GSheetsTabs(Worksheet, WritesOwnedTabs):
    def replace_tab(self, title: str, rows: Sequence[Sequence[Any]]) -> None:
        values = [[_cell(c) for c in row] for row in rows]
        height = max(len(values), 1)
        width = max((len(r) for r in values), default=1)
        first = str(values[0][0]) if values and values[0] else ""
        tab = quote_title(title)
        with self._google("read"):
            http = self._http()
            match = [p for p in self._sheets() if p.get("title") == title]
            if match:
                found = http.values_get(self.key, f"{tab}!A1").get("values") or [[""]]
                now = str(found[0][0]) if found and found[0] else ""
                if now not in ("", first):
                    raise SourceError(
                        f"{self._where()}: the spreadsheet has a tab '{title}' that annobridge "
                        f"did not write (A1 holds '{now[:40]}'); rename that tab (annobridge "
                        "replaces its own tab of that name on each run)"
                    )
                http.values_clear(self.key, tab)
                grid = match[0].get("gridProperties") or {}
                grow = []
                for dimension, have, need in (
                    ("ROWS", int(grid.get("rowCount", 0)), height),
                    ("COLUMNS", int(grid.get("columnCount", 0)), width),
                ):
                    if have and need > have:
                        grow.append(
                            {
                                "appendDimension": {
                                    "sheetId": int(match[0]["sheetId"]),
                                    "dimension": dimension,
                                    "length": need - have,
                                }
                            }
                        )
                if grow:
                    http.batch_update(self.key, {"requests": grow})
            else:
                props = {
                    "title": title,
                    "gridProperties": {"rowCount": height + 1, "columnCount": width},
                }
                http.batch_update(self.key, {"requests": [{"addSheet": {"properties": props}}]})
            http.values_update(
                self.key, f"{tab}!A1", params={"valueInputOption": "RAW"}, body={"values": values}
            )
