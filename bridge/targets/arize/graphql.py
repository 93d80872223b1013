"""GraphQL over plain HTTP: several operations in one document under aliases, and the errors
of a response assigned to the operation each belongs to.

graphql-core is a test dependency only: documents are built as text here, and the tests
validate every document a target sends against the documented schema.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Messages that say "later", not "never": the row is failed (retried next run), not rejected.
_RETRYABLE = re.compile(
    r"rate.?limit|too many|throttl|timed? ?out|temporar|unavailable|internal (server )?error|"
    r"try again",
    re.IGNORECASE,
)
_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def is_retryable(message: str) -> bool:
    """Whether a GraphQL error message says the call may succeed later."""
    return bool(_RETRYABLE.search(message))


def literal(fields: Sequence[tuple[str, str]]) -> str:
    """An input-object literal from (name, value text) pairs: ``{a: $x, b: {c: $y}}``."""
    return "{" + ", ".join(f"{name}: {value}" for name, value in fields) + "}"


@dataclass
class Operation:
    """One aliased field of a document, with the variables only it uses.

    ``variables`` maps a variable name (without ``$``) to its GraphQL type and value; every
    name must start with the alias, so errors that name a variable find their operation.
    """

    alias: str
    call: str  # e.g. updateAnnotations(input: $a0)
    selection: str  # e.g. { clientMutationId }
    variables: dict[str, tuple[str, Any]] = field(default_factory=dict)


def document(
    kind: str,
    name: str,
    operations: Sequence[Operation],
    shared: Mapping[str, tuple[str, Any]] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The text of a document holding ``operations`` under their aliases, and its variables.

    :param kind: ``mutation`` or ``query``.
    :param name: the operation name.
    :param shared: variables used by several operations (declared once).
    """
    declared: dict[str, tuple[str, Any]] = dict(shared or {})
    for op in operations:
        for var, spec in op.variables.items():
            if var in declared:  # pragma: no cover - aliases are unique by construction
                raise ValueError(f"variable ${var} declared twice")
            declared[var] = spec
    header = ", ".join(f"${var}: {gql_type}" for var, (gql_type, _) in declared.items())
    body = "\n".join(f"  {op.alias}: {op.call} {op.selection}" for op in operations)
    text = f"{kind} {name}" + (f"({header})" if header else "") + " {\n" + body + "\n}"
    return text, {var: value for var, (_, value) in declared.items()}


@dataclass
class Errors:
    """A response's errors: per alias, and those that belong to no single operation."""

    by_alias: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)


def assign_errors(body: Mapping[str, Any], aliases: Sequence[str]) -> Errors:
    """Assign each error of a GraphQL response to an operation.

    An error belongs to an alias when its ``path`` starts with the alias (an error raised
    while executing that field) or when its message names one of the alias's variables
    (a value the server could not coerce, reported before execution, without a path).
    """
    out = Errors()
    known = set(aliases)
    for error in body.get("errors") or []:
        if not isinstance(error, Mapping):
            out.general.append(str(error)[:300])
            continue
        message = str(error.get("message", "")).strip()[:300] or "unspecified error"
        path = error.get("path")
        alias = path[0] if isinstance(path, list) and path and path[0] in known else None
        if alias is None:
            for var in _VARIABLE.findall(message):
                owner = var.split("_", 1)[0]
                if owner in known:
                    alias = owner
                    break
        if alias is None:
            out.general.append(message)
        else:
            out.by_alias.setdefault(alias, []).append(message)
    return out
