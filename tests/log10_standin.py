"""A local stand-in of log10's feedback API, built from the documented contract.

This is NOT log10, which cannot be reached from here (and has had no release since January
2025). It implements the endpoints as the official Python client calls them and as the
published OpenAPI description specifies them (reference/log10-arize.md, seed 003):

- auth: ``x-log10-token`` and the organization in ``x-log10-organization-id`` (client) or
  ``X-Log10-Organization`` (spec), plus ``organization_id`` in every body and GET query;
- ``GET /api/v1/feedback_task/{id}`` and ``GET|POST /api/v1/feedback_task``;
- ``POST /api/v1/feedback``: required ``task_id, json_values, comment, organization_id``;
  either ``completion_tags_selector`` (with ``allow_unmatched_feedback``, default false, and
  ``max_matched_completions``, default 100) or ``completion_ids``; ``json_values`` validated
  against the task's JSON schema on the server ("must be valid JSON according to the task
  schema"); a completion matches a selector when it carries every tag of it;
- ``GET /api/v1/feedback`` with ``offset``/``limit`` (default 50) and ``task_id``, answering
  ``{"data": [...], "total": N}`` as the client reads it; ``GET /api/v1/feedback/{id}``.

There is no update and no delete, as in the documented API. Messages are the stand-in's own.

The server-side schema rule is written here from the documented contract, in the stand-in's
own words (:func:`schema_problem`): it never calls jsonschema, which annobridge's target
uses, so "the server validates too" can disagree with the target's own check.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.arize_standin import Call, StandInServer


class Log10StandIn(StandInServer):
    """log10's feedback task and feedback endpoints, as documented."""

    def __init__(
        self,
        *,
        token: str = "log10-test-token",
        org_id: str = "org-test",
        now_ms: Callable[[], float] = lambda: time.time() * 1000,
    ) -> None:
        super().__init__()
        self.token = token
        self.org_id = org_id
        self.now_ms = now_ms
        self.tasks: dict[str, dict[str, Any]] = {}
        self.completions: dict[str, set[str]] = {}  # completion id -> its tags
        self.feedback: list[dict[str, Any]] = []
        # The next N feedback creates are stored, then answered 502 (a lost answer).
        self.store_then_fail = 0

    # -- seeding ------------------------------------------------------------------------

    def add_task(
        self,
        name: str,
        json_schema: dict[str, Any],
        selector: list[str] | None = None,
        instruction: str = "",
    ) -> str:
        task_id = str(uuid.uuid4())
        self.tasks[task_id] = {
            "id": task_id,
            "created_at_ms": int(self.now_ms()),
            "name": name,
            "instruction": instruction,
            "json_schema": copy.deepcopy(json_schema),
            "completion_tags_selector": selector or [],
            "organization_id": self.org_id,
        }
        return task_id

    def add_completion(self, *tags: str) -> str:
        completion_id = str(uuid.uuid4())
        self.completions[completion_id] = set(tags)
        return completion_id

    def posts(self) -> list[Call]:
        return [c for c in self.calls if c.method == "POST" and c.path == "/api/v1/feedback"]

    # -- dispatch -------------------------------------------------------------------------

    def answer(self, call: Call) -> tuple[int, Any, dict[str, str]]:
        headers = {k.lower(): v for k, v in call.headers.items()}
        if headers.get("x-log10-token") != self.token:
            return 401, {"error": "invalid token"}, {}
        spellings = ("x-log10-organization-id", "x-log10-organization")
        orgs = {headers[h] for h in spellings if h in headers}
        if orgs != {self.org_id}:
            return 403, {"error": "organization header missing or not yours"}, {}
        url = urlsplit(call.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = url.path.strip("/").split("/")
        body = call.body if isinstance(call.body, dict) else {}
        org = query.get("organization_id") if call.method == "GET" else body.get("organization_id")
        if org != self.org_id:
            return 403, {"error": "organization_id missing or not yours"}, {}
        if parts[:3] == ["api", "v1", "feedback_task"]:
            if call.method == "GET" and len(parts) == 4:
                task = self.tasks.get(parts[3])
                return (200, task, {}) if task else (404, {"error": "task not found"}, {})
            if call.method == "GET" and len(parts) == 3:
                return 200, {"data": list(self.tasks.values())}, {}
        if parts[:3] == ["api", "v1", "feedback"]:
            if call.method == "POST" and len(parts) == 3:
                return self._create(body)
            if call.method == "GET" and len(parts) == 3:
                return self._list(query)
            if call.method == "GET" and len(parts) == 4:
                found = [f for f in self.feedback if f["id"] == parts[3]]
                return (200, found[0], {}) if found else (404, {"error": "not found"}, {})
        return 404, {"error": f"no route {call.method} {url.path}"}, {}

    def _create(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        for key in ("task_id", "json_values", "comment", "organization_id"):
            if key not in body:
                return 422, {"detail": f"{key} is required"}, {}
        by_tags = "completion_tags_selector" in body
        if by_tags == ("completion_ids" in body):
            return 422, {"detail": "give completion_tags_selector or completion_ids"}, {}
        task = self.tasks.get(str(body["task_id"]))
        if task is None:
            return 404, {"error": "feedback task not found"}, {}
        values = body["json_values"]
        schema = task["json_schema"]
        problem = schema_problem(values, schema)
        if problem:
            return 422, {"detail": f"json_values do not match the task schema: {problem}"}, {}
        if by_tags:
            selector = set(body["completion_tags_selector"] or [])
            matched = sorted(c for c, tags in self.completions.items() if selector <= tags)
            limit = body.get("max_matched_completions", 100)
            if not matched and not body.get("allow_unmatched_feedback", False):
                return 400, {"error": "no completions matched the tags selector"}, {}
            if len(matched) > limit:
                detail = f"{len(matched)} completions matched, more than {limit}"
                return 400, {"error": detail}, {}
        else:
            unknown = [c for c in body["completion_ids"] if c not in self.completions]
            if unknown:
                return 400, {"error": f"unknown completion ids: {', '.join(unknown)}"}, {}
            matched = list(body["completion_ids"])
        feedback = {
            "id": str(uuid.uuid4()),
            "created_at_ms": int(self.now_ms()),
            "task_id": task["id"],
            "task_name": task["name"],
            "json_values": values,
            "matched_completion_ids": matched,
            "comment": body["comment"],
            "completions_summary": "",
        }
        self.feedback.append(feedback)
        if self.store_then_fail:
            self.store_then_fail -= 1
            return 502, {"error": "bad gateway"}, {}
        return 200, feedback, {}

    def _list(self, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        items = [f for f in self.feedback if f["task_id"] == query.get("task_id", f["task_id"])]
        offset = int(query.get("offset", 0))
        limit = int(query.get("limit", 50))
        return 200, {"data": items[offset : offset + limit], "total": len(items)}, {}


# JSON Schema's type names and the Python values each accepts (bool is not a number there).
_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (
        isinstance(v, int | float) and not isinstance(v, bool) and float(v).is_integer()
    ),
}


def schema_problem(value: Any, schema: Any, where: str = "json_values") -> str | None:
    """The first way ``value`` breaks the task's schema, in the stand-in's words; None if none.

    Covers what task schemas use (type, enum, const, minimum/maximum, required, properties,
    additionalProperties, items); other keywords are not enforced.
    """
    if not isinstance(schema, dict):
        return None
    wanted = schema.get("type")
    if wanted is not None:
        names = wanted if isinstance(wanted, list) else [wanted]
        if not any(_TYPES.get(n, lambda v: False)(value) for n in names):
            return f"{where} should be {' or '.join(map(str, names))}, got {value!r}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where} {value!r} is not an allowed value (allowed: {schema['enum']!r})"
    if "const" in schema and value != schema["const"]:
        return f"{where} must be {schema['const']!r}"
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{where} {value!r} is below the minimum {schema['minimum']!r}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{where} {value!r} is above the maximum {schema['maximum']!r}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                return f"{where} lacks the required field {key!r}"
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                problem = schema_problem(item, properties[key], f"{where}.{key}")
                if problem:
                    return problem
            elif schema.get("additionalProperties") is False:
                return f"{where} has a field the task does not define: {key!r}"
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problem = schema_problem(item, schema["items"], f"{where}[{i}]")
            if problem:
                return problem
    return None
