"""Sheet columns a target reads besides the annotation's own label, score and explanation.

Arize's record start time and log10's json_values can come from other columns of the row.
The pipeline hands them over as ``Annotation.extra`` once it carries them; until then a
mapping that names such a column is refused when the target opens, never ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from bridge.records import Annotation

PIPELINE_CARRIES_EXTRA = "extra" in {f.name for f in dataclasses.fields(Annotation)}


def extra_values(a: Annotation) -> Mapping[str, Any]:
    """The extra sheet columns of an annotation's row (empty while the pipeline lacks them)."""
    extra = getattr(a, "extra", None)
    return extra if isinstance(extra, Mapping) else {}
