"""log10 feedback (experimental): SME labels as feedback on completions, matched by tags or ids.

log10 is a hosted service that the machines annobridge is built on cannot reach, and it has
had no release since January 2025: this module follows the documented contract (the official
Python client's requests, https://github.com/log10-io/log10, and the published OpenAPI
description; ``docs/platform-notes.md``, section "log10") and is tested against a local
stand-in of those endpoints.

- The feedback task is read first (``GET /api/v1/feedback_task/{id}``). Each row's
  ``json_values`` are built from the mapping (label, score, explanation, annotator or another
  column), coerced to the types the task's JSON schema names, and validated against that
  schema locally: a row that does not fit is reported with the reasons and never sent.
- Feedback is created with ``POST /api/v1/feedback``: the values, the completion tags
  selector (or completion ids), the comment (the row's explanation) and the organization.
- log10 has no upsert, no update and no delete. So a create is never retried blindly after
  it may have reached the server: when its outcome is uncertain (a timeout, a 5xx), the
  task's feedback is read back (paginated) and a feedback created since with the same
  content counts as this row's. An edited row is refused (``on_edit: reject``, the default)
  or sent as new feedback (``on_edit: resend``), leaving the old one in place.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import requests
from jsonschema import exceptions as jsonschema_exceptions
from jsonschema import validators
from requests.adapters import HTTPAdapter

from bridge import http
from bridge.errors import AuthRefused, ConfigError, TargetUnreachable
from bridge.records import Annotation, Outcome, PlatformRule, Status
from bridge.targets.base import ChecksAnnotations, Locates, Progress, PullsRules, Target
from bridge.targets.log10.config import Log10Config
from bridge.targets.log10.rules import from_json_schema

DEFAULT_URL = "https://log10.io"
PLATFORM = "log10"
AUTH_HINT = "set LOG10_TOKEN and LOG10_ORG_ID to a log10 API token and its organization id"
NOT_THE_API = (
    "target.url (or LOG10_URL) reaches something that is not log10's API (a sign-in page or "
    f"a proxy in front of it?); set it to log10's address, or leave it out for {DEFAULT_URL}"
)
# A feedback read back after an uncertain create counts only if created at most this long
# before we sent ours (clock skew between us and the server).
CLOCK_SKEW_MS = 5 * 60 * 1000
# Reading back stops after this many feedback items; beyond, the row is reported unconfirmed.
MAX_READ_BACK = 10_000
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


def headers_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """The headers of the official client, plus the organization header of the OpenAPI spec."""
    headers = {"Content-Type": "application/json"}
    token = env.get("LOG10_TOKEN", "").strip()
    org = env.get("LOG10_ORG_ID", "").strip()
    if token:
        headers["x-log10-token"] = token
    if org:
        headers["x-log10-organization-id"] = org
        headers["X-Log10-Organization"] = org
    return headers


def no_blind_post_retries(session: requests.Session) -> None:
    """Let the session retry GETs only: a create that reached log10 must not be repeated.

    Connection failures before the request is sent are still retried (urllib3 retries
    connect errors for any method); read errors and 429/5xx answers to POSTs are not.
    """
    for adapter in session.adapters.values():
        if isinstance(adapter, HTTPAdapter):
            adapter.max_retries = adapter.max_retries.new(allowed_methods=frozenset({"GET"}))


def split_ids(value: str) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c']: a row may name several tags or completion ids."""
    return [part.strip() for part in value.split(",") if part.strip()]


def coerce(value: Any, schema: Mapping[str, Any]) -> Any:
    """A sheet value as the JSON type the task's schema asks for, when it converts cleanly.

    Values that do not convert are left as they are: the schema check then says why.
    """
    wanted = schema.get("type")
    types = wanted if isinstance(wanted, list) else [wanted]
    for t in types:
        if t == "integer":
            number = _number(value)
            if number is not None and float(number).is_integer():
                return int(number)
        elif t == "number":
            number = _number(value)
            if number is not None:
                return int(number) if float(number).is_integer() else number
        elif t == "boolean":
            if isinstance(value, bool):
                return value
            text = str(value).strip().casefold()
            if isinstance(value, float) and value in (0.0, 1.0):
                return value == 1.0
            if text in _TRUE or text in _FALSE:
                return text in _TRUE
        elif t == "string":
            if isinstance(value, str):
                return value
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, float) and value.is_integer():
                return str(int(value))
            return str(value)
    return value


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


class Log10Target(Target, ChecksAnnotations, Locates, PullsRules):
    """Feedback on log10 completions.

    :param config: the mapping's ``target`` section.
    :param session: an HTTP session (tests inject one); built from LOG10_* otherwise. Either
        way, its POSTs are never retried after they may have reached the server.
    :param env: where LOG10_URL, LOG10_TOKEN and LOG10_ORG_ID are read (default: os.environ).
    :param now_ms: the current time in ms since the epoch (tests pin it).
    """

    name = "log10"

    def __init__(
        self,
        config: Log10Config,
        *,
        session: requests.Session | None = None,
        env: Mapping[str, str] | None = None,
        now_ms: Callable[[], float] = lambda: time.time() * 1000,
    ) -> None:
        environ = os.environ if env is None else env
        self.config = config
        self.kind: str = config.record_kind()
        self.base_url = (
            (config.url or environ.get("LOG10_URL", "").strip() or DEFAULT_URL)
            .rstrip("/")
            .removesuffix("/api/v1")
        )
        self._has_token = bool(environ.get("LOG10_TOKEN", "").strip())
        self.org_id = environ.get("LOG10_ORG_ID", "").strip()
        if session is None:
            session = http.make_session(headers=headers_from_env(environ), timeout=config.timeout)
            http.settle_environment(session, self.base_url)
        self.session = session
        no_blind_post_retries(self.session)
        self._now_ms = now_ms
        self._task: dict[str, Any] | None = None
        self._validator: Any = None
        self._claimed: set[str] = set()

    # -- the Target interface -----------------------------------------------------------

    def fingerprint(self) -> str:
        return f"log10|{self.base_url}|{self.org_id}|{self.config.task_id}"

    def where(self) -> tuple[str | None, str | None]:
        return self.base_url, self.config.task_id

    def payload(self, a: Annotation) -> dict[str, Any]:
        values, _ = self._values(a)
        body: dict[str, Any] = {"task_id": self.config.task_id, "json_values": values}
        if self.config.match == "tags":
            body["completion_tags_selector"] = split_ids(a.target_id)
            if self.config.max_matched_completions is not None:
                body["max_matched_completions"] = self.config.max_matched_completions
        else:
            body["completion_ids"] = split_ids(a.target_id)
        body["comment"] = a.explanation
        body["organization_id"] = self.org_id
        return body

    def close(self) -> None:
        self.session.close()

    def check(self) -> None:
        self._load_task()

    def problems(self, a: Annotation) -> list[str]:
        """Why this row's values do not fit the task's JSON schema (empty when they do)."""
        return self._values(a)[1]

    def send(
        self, annotations: Sequence[Annotation], progress: Progress | None = None
    ) -> list[Outcome]:
        done = progress or (lambda n: None)
        outcomes: list[Outcome] = []
        stopped = ""
        created = 0
        for a in annotations:
            if stopped:
                outcome = Outcome.failed(f"not sent: {stopped}")
            elif a.is_update and self.config.on_edit == "reject":
                outcome = Outcome.rejected(
                    "this row was sent to log10 before (its feedback id is in the id column) "
                    "and log10 cannot update or delete feedback, so the edit was not sent; "
                    "undo the edit, or set target.on_edit: resend to add it as new feedback "
                    "(the old one stays)"
                )
            elif problems := self.problems(a):
                outcome = Outcome.rejected("not sent: " + "; ".join(problems))
            else:
                body = self.payload(a)
                sent_at = self._now_ms()
                try:
                    response = self._call("POST", "/api/v1/feedback", json=body)
                    outcome = self._created(response)  # a sign-in page: UnexpectedAnswer
                except AuthRefused as exc:
                    if not created:
                        raise  # nothing stored yet: stop the run, nothing lost
                    stopped = str(exc)
                    outcome = Outcome.failed(str(exc))
                except TargetUnreachable as exc:
                    stopped = f"log10 stopped answering ({exc})"
                    outcome = self._read_back(body, sent_at, str(exc))
                if outcome.status == Status.SYNCED:
                    created += 1
                    self._claimed.add(outcome.remote_id)
            outcomes.append(outcome)
            done(1)
        return outcomes

    # -- helpers --------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return http.request(
            self.session,
            method,
            f"{self.base_url}{path}",
            platform=PLATFORM,
            auth_hint=AUTH_HINT,
            **kwargs,
        )

    def _answer(self, response: requests.Response) -> dict[str, Any]:
        """A 2xx answer's JSON object; a sign-in page or another shape is UnexpectedAnswer."""
        return http.json_object(response, platform=PLATFORM, fix=NOT_THE_API)

    def _load_task(self) -> dict[str, Any]:
        """The feedback task, read once; its JSON schema checked and compiled."""
        if self._task is not None:
            return self._task
        if not self._has_token or not self.org_id:
            raise ConfigError(f"LOG10_TOKEN or LOG10_ORG_ID is not set; {AUTH_HINT}")
        task_id = self.config.task_id
        response = self._call(
            "GET", f"/api/v1/feedback_task/{task_id}", params={"organization_id": self.org_id}
        )
        if response.status_code == 404:
            raise ConfigError(
                f"log10 has no feedback task '{task_id}' in organization {self.org_id}; check "
                "target.task_id ('log10 feedback task list' shows the ids)"
            )
        body = self._answer(response) if response.status_code == 200 else _json(response)
        if response.status_code != 200 or not isinstance(body, dict):
            raise ConfigError(
                f"log10 did not return feedback task '{task_id}' ({response.status_code}: "
                f"{_detail(response)})"
            )
        task = body["data"] if isinstance(body.get("data"), dict) else body
        schema = task.get("json_schema")
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except ValueError:
                schema = None
        if not isinstance(schema, dict):
            raise ConfigError(f"log10 feedback task '{task_id}' has no usable json_schema")
        cls = validators.validator_for(schema)
        try:
            cls.check_schema(schema)
        except jsonschema_exceptions.SchemaError as exc:
            raise ConfigError(
                f"the json_schema of log10 feedback task '{task_id}' is not a valid JSON "
                f"schema ({exc.message})"
            ) from None
        self._check_fields(task, schema)
        self._validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        self._task = {**task, "json_schema": schema}
        return self._task

    def _check_fields(self, task: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
        """The mapping's json_values against the task's fields: fail before any row."""
        props = schema.get("properties")
        name = task.get("name") or self.config.task_id
        mapped = set(self.config.json_values)
        if isinstance(props, dict):
            unknown = sorted(mapped - set(props))
            if unknown and schema.get("additionalProperties") is False:
                raise ConfigError(
                    f"log10 task '{name}' has no field {', '.join(unknown)}; its fields are "
                    f"{', '.join(sorted(props))}: fix target.json_values"
                )
        required = schema.get("required")
        if isinstance(required, list):
            missing = [str(r) for r in required if r not in mapped]
            if missing:
                raise ConfigError(
                    f"log10 task '{name}' requires {', '.join(missing)}; map "
                    f"{'it' if len(missing) == 1 else 'them'} in target.json_values"
                )

    def _values(self, a: Annotation) -> tuple[dict[str, Any], list[str]]:
        """This row's json_values, coerced to the schema's types, and what the schema refuses."""
        task = self._load_task()
        schema = task["json_schema"]
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        extra = a.extra
        own = {
            "label": a.label,
            "score": a.score,
            "explanation": a.explanation,
            "annotator": a.annotator,
        }
        values: dict[str, Any] = {}
        for key, source in self.config.json_values.items():
            if source.startswith("column:"):
                raw = extra.get(source[len("column:") :].strip())
            else:
                raw = own[source]
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                continue
            prop = props.get(key)
            values[key] = coerce(raw, prop if isinstance(prop, dict) else {})
        problems = []
        for error in sorted(self._validator.iter_errors(values), key=lambda e: list(e.path)):
            if error.path:
                key = str(error.path[0])
                source = self.config.json_values.get(key, "")
                where = ".".join(str(p) for p in error.path)
                problems.append(f"{where} (from {source}): {error.message}"[:300])
            else:
                problems.append(f"log10 task '{task.get('name') or 'task'}': {error.message}")
        return values, problems

    def _created(self, response: requests.Response) -> Outcome:
        if response.status_code in (200, 201):
            feedback_id = self._answer(response).get("id")
            return Outcome.ok(str(feedback_id) if feedback_id else "")
        detail = _detail(response)
        if 400 <= response.status_code < 500:
            hint = ""
            if "completion" in detail.lower():
                hint = (
                    "; check the tags or ids: feedback must match at least one completion"
                    if self.config.match == "tags"
                    else "; check the completion ids"
                )
            return Outcome.rejected(f"log10 answered {response.status_code}: {detail}{hint}")
        return Outcome.failed(f"log10 answered {response.status_code}: {detail}")

    def _feedback(self) -> Iterator[dict[str, Any]]:
        """The task's feedback, page by page (offset/limit), as the official client reads it."""
        offset = 0
        limit = self.config.page_size
        while offset < MAX_READ_BACK:
            response = self._call(
                "GET",
                "/api/v1/feedback",
                params={
                    "organization_id": self.org_id,
                    "task_id": self.config.task_id,
                    "offset": offset,
                    "limit": limit,
                },
            )
            if response.status_code == 200:
                body = http.json_of(response, platform=PLATFORM, fix=NOT_THE_API)
            else:
                body = _json(response)
            if response.status_code != 200 or body is None:
                raise TargetUnreachable(
                    f"log10 did not list feedback ({response.status_code}: {_detail(response)})"
                )
            # The client reads {"data": [...], "total": N}; the OpenAPI spec {"feedback": [...]}.
            items: Any = body
            total = None
            if isinstance(body, dict):
                items = body.get("data", body.get("feedback", []))
                total = body.get("total")
            if not isinstance(items, list) or not items:
                return
            for item in items:
                if isinstance(item, dict):
                    yield item
            offset += len(items)
            if isinstance(total, int) and offset >= total:
                return
            if total is None and len(items) < limit:
                return

    def _read_back(self, body: Mapping[str, Any], sent_at: float, reason: str) -> Outcome:
        """After an uncertain create: did log10 store it? Look for it among the task's feedback."""
        wanted_ids = set(body.get("completion_ids") or [])
        try:
            for item in self._feedback():
                feedback_id = str(item.get("id") or "")
                created = item.get("created_at_ms")
                if (
                    not feedback_id
                    or feedback_id in self._claimed
                    or item.get("json_values") != body["json_values"]
                    or ("comment" in item and (item["comment"] or None) != body["comment"])
                    or not isinstance(created, int | float)
                    or created < sent_at - CLOCK_SKEW_MS
                ):
                    continue
                matched = set(item.get("matched_completion_ids") or [])
                if wanted_ids and matched and not wanted_ids <= matched:
                    continue
                return Outcome.ok(feedback_id)
        except (TargetUnreachable, AuthRefused) as exc:
            return Outcome.failed(
                f"log10 did not confirm this feedback ({reason}; then: {exc}); it may have "
                "stored it: check the task's feedback before the next run, which sends it again"
            )
        return Outcome.failed(f"log10 did not store this feedback ({reason})")

    # -- rules from the platform (optional Target method) -------------------------------

    def fetch_rules(self, names: Sequence[str]) -> dict[str, PlatformRule]:
        """The feedback task's JSON schema as rules, through ``json_values`` (the same rules
        for every annotation name: a log10 target writes one task)."""
        task = self._load_task()
        schema = task["json_schema"]
        return {
            name: from_json_schema(name, self.config.task_id, schema, self.config.json_values)
            for name in names
        }


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _detail(response: requests.Response) -> str:
    body = _json(response)
    if isinstance(body, dict):
        for key in ("detail", "error", "message"):
            if body.get(key):
                value = body[key]
                return (value if isinstance(value, str) else json.dumps(value))[:300]
    return response.text.strip()[:300] or response.reason or "no detail"
