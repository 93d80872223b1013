"""MLflow: human labels as assessments (feedback or expectations) on traces, over REST.

What the server does (reference/mlflow.md), and what this module does about it:

- There is no batch endpoint and no upsert: ``POST /traces/{id}/assessments`` stores a
  second copy of the same label. annobridge chooses each ``assessment_id`` itself, a hash of
  (trace, name, annotator) that is stable for a row's annotation, so a create that is retried
  after a timeout meets the first one (MLflow answers 500 "constraint violation"; we read it
  back and reconcile) instead of adding a duplicate.
- A new row is POSTed, an edited row (one with a sync_hash) is PATCHed in place, with a
  camelCase ``update_mask`` (a snake_case mask answers 200 and changes nothing); each answer
  says when that guess was wrong (404: create; 409: read back and reconcile; a source or
  kind that PATCH cannot change: delete and create again, with the same id). Rows by
  ``client_request_id`` are resolved first, in bulk (``traces/search`` with ``IN (...)``,
  within the experiment), and that answer carries the assessments the traces hold: a label
  already there as sent costs no request.
- The server stores bad input silently: an unknown source type becomes UNSPECIFIED, a
  non-string metadata value drops the metadata, an expectation's rationale is dropped, and
  names and source ids longer than 250 characters fail only on Postgres and MySQL. All of
  that is checked here, and every write is compared with what the server answered.
- Writes go through a bounded thread pool: one request per label, ``concurrency`` at once.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import math
import os
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from bridge import http
from bridge.errors import ConfigError, MappingError, TargetUnreachable
from bridge.mapping import AnnotationSpec
from bridge.mapping import MlflowTarget as MlflowConfig
from bridge.records import Annotation, Outcome, Status
from bridge.targets.base import Progress, chunks

if TYPE_CHECKING:
    from bridge.export import ExportQuery, ExportRecord
    from bridge.platform_rules import PlatformRule

DEFAULT_URL = "http://localhost:5000"
PLATFORM = "MLflow"
API = "/api/3.0/mlflow"
# Writes that fail one after the other (each after its own retries) before the run stops
# sending: one bad answer fails its row; this many in a row means MLflow is down.
STOP_AFTER_FAILURES = 8
API2 = "/api/2.0/mlflow"
# Column sizes of MLflow's assessments table (VARCHAR): longer values fail on Postgres/MySQL
# and pass on SQLite, so they are refused here for every backend.
MAX_NAME = 250
MAX_SOURCE_ID = 250
MAX_ASSESSMENT_ID = 50
IDS_PER_LOOKUP = 100  # request ids per search filter
SEARCH_PAGE = 500  # the server's maximum for traces/search
MAX_LISTED = 5  # trace ids listed in an "ambiguous request id" message
DEFAULT_SOURCE_ID = "annobridge"
SOURCE_TYPES = {"HUMAN": "HUMAN", "LLM": "LLM_JUDGE", "CODE": "CODE"}
TRUE_VALUES = {"true", "1"}
FALSE_VALUES = {"false", "0", ""}


@dataclass(frozen=True)
class Connection:
    """Where MLflow is and how to authenticate, from MLflow's own environment variables."""

    base_url: str
    headers: dict[str, str] = field(repr=False)
    verify: bool | str = True
    cert: str | None = None
    auth_hint: str = ""
    basic: tuple[str, str] | None = field(default=None, repr=False)


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise ConfigError(f"{name} is '{value}'; set it to true or false")


def connection_from_env(url: str | None, env: Mapping[str, str]) -> Connection:
    """MLflow's client rules: MLFLOW_TRACKING_URI; basic auth from MLFLOW_TRACKING_USERNAME and
    MLFLOW_TRACKING_PASSWORD, which win over MLFLOW_TRACKING_TOKEN (bearer); TLS from
    MLFLOW_TRACKING_INSECURE_TLS, MLFLOW_TRACKING_SERVER_CERT_PATH, _CLIENT_CERT_PATH."""
    raw = (url or env.get("MLFLOW_TRACKING_URI", "").strip() or DEFAULT_URL).rstrip("/")
    parts = urllib.parse.urlsplit(raw)
    where = "target.url" if url else "MLFLOW_TRACKING_URI"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = http.redact(raw)
        raise ConfigError(
            f"{where} is '{shown}'; annobridge talks to an MLflow tracking server over HTTP: "
            "start one with 'mlflow server' and give its URL, e.g. http://127.0.0.1:5000"
            + (" (Databricks is not supported)" if raw.startswith("databricks") else "")
        )
    for unsupported in ("MLFLOW_TRACKING_AWS_SIGV4", "MLFLOW_TRACKING_AUTH"):
        if env.get(unsupported, "").strip() and env.get(unsupported, "").strip() != "false":
            raise ConfigError(
                f"{unsupported} is set, and annobridge does not support it; use "
                "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN"
            )
    username = env.get("MLFLOW_TRACKING_USERNAME", "")
    password = env.get("MLFLOW_TRACKING_PASSWORD", "")
    if parts.username is not None and not username:  # user:password@ in the URL
        username = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    if ":" in parts.hostname:  # IPv6 literal
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    base_url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    token = env.get("MLFLOW_TRACKING_TOKEN", "")
    headers: dict[str, str] = {}
    if bool(username) != bool(password):
        missing = "MLFLOW_TRACKING_PASSWORD" if username else "MLFLOW_TRACKING_USERNAME"
        raise ConfigError(
            f"{missing} is not set, but its partner is; set both for basic auth, or neither"
        )
    if username and password:
        pair = base64.b64encode(f"{username}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {pair}"
        hint = (
            "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD; writing labels needs "
            "EDIT permission on the experiment"
        )
    elif token:
        headers["Authorization"] = f"Bearer {token}"
        hint = (
            "check MLFLOW_TRACKING_TOKEN; MLflow's own basic-auth server ignores tokens, so set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD for it instead"
        )
    else:
        hint = (
            "this MLflow wants credentials: set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD (basic auth), or MLFLOW_TRACKING_TOKEN (bearer token)"
        )
    insecure = _flag(env, "MLFLOW_TRACKING_INSECURE_TLS")
    ca_bundle = env.get("MLFLOW_TRACKING_SERVER_CERT_PATH", "").strip()
    if insecure and ca_bundle:
        raise ConfigError(
            "MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH are both set; "
            "they exclude each other: unset one"
        )
    verify: bool | str = ca_bundle or not insecure
    cert = env.get("MLFLOW_TRACKING_CLIENT_CERT_PATH", "").strip() or None
    basic = (username, password) if username and password else None
    return Connection(base_url, headers, verify, cert, hint, basic)


def assessment_id(trace_id: str, name: str, identifier: str) -> str:
    """The id annobridge gives an assessment: stable per trace, name and annotator.

    ``a-`` and 32 hex characters, like the ids MLflow makes (the column holds 50).
    """
    digest = hashlib.sha256(f"{trace_id}\x1f{name}\x1f{identifier}".encode()).hexdigest()
    return f"a-{digest[:32]}"


def _quote(text: str) -> str:
    """A string literal of MLflow's search filter grammar."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class ValueRule:
    """How one annotation becomes an assessment: its kind, value type and allowed values."""

    kind: str = "feedback"  # feedback | expectation
    value: str = "auto"  # auto | pass_fail | numeric | categorical | categorical_list | text
    positive: str | None = None
    negative: str | None = None
    options: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    schema: str | None = None  # the MLflow label schema these rules came from

    def origin(self) -> str:
        return f" (MLflow label schema '{self.schema}')" if self.schema else ""


class NotSendable(ValueError):
    """An annotation MLflow would store wrongly or not at all; the message says the fix."""


def to_value(a: Annotation, rule: ValueRule) -> tuple[Any, dict[str, str]]:
    """The assessment value of an annotation, and metadata that keeps what the value cannot.

    :raises NotSendable: the label or score does not fit the value type or its limits.
    """
    extra: dict[str, str] = {}
    label, score = a.label, a.score
    kind = rule.value
    if kind == "auto":
        kind = "categorical" if label is not None else "numeric"
    if kind == "numeric":
        if score is None and label is not None:
            try:
                score = float(label)
            except ValueError:
                score = None
        elif label is not None:
            extra["label"] = label
        if score is None or not math.isfinite(score):
            raise NotSendable(f"'{a.name}' is numeric{rule.origin()}: give a score")
        if rule.minimum is not None and score < rule.minimum:
            raise NotSendable(
                f"score {_num(score)} is below the minimum {_num(rule.minimum)} of "
                f"'{a.name}'{rule.origin()}"
            )
        if rule.maximum is not None and score > rule.maximum:
            raise NotSendable(
                f"score {_num(score)} is above the maximum {_num(rule.maximum)} of "
                f"'{a.name}'{rule.origin()}"
            )
        return score, extra
    if kind == "pass_fail":
        if label is not None and score is not None:
            extra["score"] = _num(score)
        return _pass_fail(a, rule), extra
    if label is None:
        raise NotSendable(f"'{a.name}' needs a label{rule.origin()}")
    if score is not None:
        extra["score"] = _num(score)
    if kind == "categorical_list":
        return [_option(p, a.name, rule) for p in label.split(",") if p.strip()], extra
    if kind == "categorical":
        return _option(label, a.name, rule), extra
    if rule.max_length is not None and len(label) > rule.max_length:  # text
        raise NotSendable(
            f"label is {len(label):,} characters; '{a.name}' takes at most "
            f"{rule.max_length:,}{rule.origin()}"
        )
    return label, extra


def _pass_fail(a: Annotation, rule: ValueRule) -> bool:
    positive, negative = rule.positive or "pass", rule.negative or "fail"
    if a.label is None:
        if a.score in (0.0, 1.0):
            return a.score == 1.0
        raise NotSendable(
            f"'{a.name}' is pass/fail{rule.origin()}: give the label '{positive}' or "
            f"'{negative}' (or a score of 1 or 0)"
        )
    folded = a.label.strip().casefold()
    if folded not in (positive.casefold(), negative.casefold()):
        # no pass/fail labels given: say where 'pass' and 'fail' come from, and the fix
        why = (
            f"; '{a.name}' is pass_fail (target.values) and the mapping names no pass and fail "
            f"labels: set target.pass_fail.{a.name}: [<pass label>, <fail label>], give "
            f"rules.labels exactly two labels (pass first), or set target.values.{a.name}: "
            "categorical"
            if rule.positive is None and not rule.schema
            else ""
        )
        raise NotSendable(
            f"label '{a.label}' is neither '{positive}' (pass) nor '{negative}' (fail) for "
            f"'{a.name}'{rule.origin()}{why}"
        )
    return folded == positive.casefold()


def _option(text: str, name: str, rule: ValueRule) -> str:
    """The option a label names (matched without regard to case)."""
    text = text.strip()
    if rule.options is None:
        return text
    for option in rule.options:
        if option.casefold() == text.casefold():
            return option
    raise NotSendable(
        f"label '{text}' is not one of the options of '{name}'{rule.origin()}: "
        f"{', '.join(rule.options)}"
    )


def _same_value(sent: Any, stored: Any) -> bool:
    if isinstance(sent, bool) or isinstance(stored, bool):
        return sent is stored
    if isinstance(sent, int | float) and isinstance(stored, int | float):
        return math.isclose(float(sent), float(stored), rel_tol=1e-12, abs_tol=1e-12)
    return bool(sent == stored)


def differences(wanted: Mapping[str, Any], stored: Mapping[str, Any]) -> list[str]:
    """What of ``wanted`` the stored assessment does not hold (metadata may hold more)."""
    out: list[str] = []
    for key in ("assessment_name", "assessment_id"):
        if wanted.get(key) and wanted.get(key) != stored.get(key):
            out.append(key)
    kind = "expectation" if "expectation" in wanted else "feedback"
    if not isinstance(stored.get(kind), dict):
        out.append("kind")
    elif not _same_value(wanted[kind].get("value"), stored[kind].get("value")):
        out.append("value")
    if (wanted.get("rationale") or "") != (stored.get("rationale") or ""):
        out.append("rationale")
    if wanted.get("source") != stored.get("source"):
        out.append("source")
    held = stored.get("metadata") or {}
    if any(held.get(k) != v for k, v in (wanted.get("metadata") or {}).items()):
        out.append("metadata")
    return out


def _error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:300]
    return response.text.strip()[:300]  # pragma: no cover - MLflow errors carry a message


def _duplicate_as_conflict(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """MLflow answers a create whose assessment_id exists with 500 "constraint violation".

    That is a conflict, not an outage: shown as 409, so it is neither retried nor taken for
    a broken server, and the writer reads the existing assessment back instead.
    """
    request = response.request
    if (
        response.status_code == 500
        and request.method == "POST"
        and (request.url or "").endswith("/assessments")
        and "constraint violation" in response.text
    ):
        response.status_code = 409


@dataclass
class _Write:
    """One annotation on its way: the body to send and what the server holds already."""

    index: int
    annotation: Annotation
    trace_id: str
    body: dict[str, Any]
    known: bool = False  # whether ``stored`` was read from the server
    stored: dict[str, Any] | None = None


class MlflowTarget:
    """Assessments on an MLflow tracking server.

    :param config: the mapping's ``target`` section.
    :param specs: the mapping's annotation entries (their rules feed pass/fail labels).
    :param mapping_path: the mapping file, named in configuration errors.
    :param session: an HTTP session (tests inject one); built from the env otherwise.
    :param env: where MLFLOW_* variables are read from (default: os.environ).
    """

    name = "mlflow"

    def __init__(
        self,
        config: MlflowConfig,
        *,
        specs: Sequence[AnnotationSpec] = (),
        mapping_path: Path | str | None = None,
        session: requests.Session | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        environ = os.environ if env is None else env
        self.config = config
        self.kind: str = config.record_kind()
        self.connection = connection_from_env(config.url, environ)
        self.base_url = self.connection.base_url
        self.experiment = (
            config.experiment
            or environ.get("MLFLOW_EXPERIMENT_NAME", "").strip()
            or environ.get("MLFLOW_EXPERIMENT_ID", "").strip()
            or None
        )
        self._path = mapping_path or "the mapping"
        self._check_config(specs)
        self._rules = self._config_rules(specs)
        self.session = session or self._session()
        self.session.hooks["response"].append(_duplicate_as_conflict)
        self._experiment_id: str | None = None
        self._schemas_loaded = False

    # -- configuration ------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = http.make_session(
            headers=self.connection.headers,
            timeout=self.config.timeout,
            pool_size=self.config.concurrency,
        )
        # MLflow uses 500 for "assessment id exists" too: retrying it only repeats it.
        for adapter in session.adapters.values():
            retry = getattr(adapter, "max_retries", None)
            if retry is not None:
                adapter.max_retries = retry.new(  # type: ignore[attr-defined]
                    status_forcelist=tuple(s for s in http.RETRY_STATUSES if s != 500)
                )
        session.verify = self.connection.verify
        if self.connection.basic:  # also as auth: a password echoed back is blanked too
            session.auth = self.connection.basic
        if self.connection.cert:
            session.cert = self.connection.cert
        http.settle_environment(session, self.connection.base_url)
        return session

    def _check_config(self, specs: Sequence[AnnotationSpec]) -> None:
        names = {s.name for s in specs}
        for i, spec in enumerate(specs):
            if len(spec.name) > MAX_NAME:
                raise MappingError(
                    self._path,
                    f"the name is {len(spec.name)} characters; MLflow keeps at most {MAX_NAME}",
                    key=f"annotations[{i}].name",
                )
        if specs:
            for key, listed in (
                ("values", self.config.values),
                ("pass_fail", self.config.pass_fail),
                ("expectations", self.config.expectations),
            ):
                for name in listed:
                    if name not in names:
                        raise MappingError(
                            self._path,
                            f"'{name}' is not the name of an annotation in this mapping "
                            f"(known: {', '.join(sorted(names))})",
                            key=f"target.{key}",
                        )
        need = []
        if self.config.id_kind == "client_request_id":
            need.append("id_kind: client_request_id")
        if self.config.label_schemas:
            need.append("label_schemas: true")
        if need and not self.experiment:
            raise MappingError(
                self._path,
                f"{' and '.join(need)} need the experiment: set target.experiment (its name "
                "or id) or MLFLOW_EXPERIMENT_NAME",
                key="target.experiment",
            )

    def _config_rules(self, specs: Sequence[AnnotationSpec]) -> dict[str, ValueRule]:
        labels = {s.name: s.rules.labels for s in specs}
        rules: dict[str, ValueRule] = {}
        for name in set(labels) | set(self.config.values) | set(self.config.expectations):
            value = self.config.values.get(name, "auto")
            if name in self.config.pass_fail:
                value = "pass_fail"
            positive = negative = None
            if value == "pass_fail":
                if name in self.config.pass_fail:
                    positive, negative = self.config.pass_fail[name]
                elif labels.get(name) and len(labels[name] or []) == 2:
                    positive, negative = (labels[name] or [])[0], (labels[name] or [])[1]
            rules[name] = ValueRule(
                kind="expectation" if name in self.config.expectations else "feedback",
                value=value,
                positive=positive,
                negative=negative,
            )
        return rules

    def fingerprint(self) -> str:
        settings = json.dumps(
            [
                self.config.values,
                self.config.pass_fail,
                sorted(self.config.expectations),
                self.config.label_schemas,
            ],
            sort_keys=True,
        )
        digest = hashlib.sha256(settings.encode()).hexdigest()[:8]
        return (
            f"mlflow|{http.redact(self.base_url)}|{self.experiment or ''}|"
            f"{self.config.id_kind}|{digest}"
        )

    def close(self) -> None:
        self.session.close()

    # -- HTTP -----------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        return http.request(
            self.session,
            method,
            url,
            platform=PLATFORM,
            auth_hint=self.connection.auth_hint,
            **kwargs,
        )

    def experiment_id(self) -> str | None:
        """The configured experiment's id (looked up once by name, or taken as an id)."""
        if self._experiment_id is not None or not self.experiment:
            return self._experiment_id
        name = self.experiment
        response = self._call(
            "GET", f"{API2}/experiments/get-by-name", params={"experiment_name": name}
        )
        if response.status_code == 200:
            self._experiment_id = str(response.json()["experiment"]["experiment_id"])
            return self._experiment_id
        if name.isdigit():
            response = self._call("GET", f"{API2}/experiments/get", params={"experiment_id": name})
            if response.status_code == 200:
                self._experiment_id = name
                return name
        raise ConfigError(
            f"MLflow at {http.redact(self.base_url)} has no experiment '{name}' "
            f"({_error_message(response)}); check target.experiment or MLFLOW_EXPERIMENT_NAME"
        )

    def check(self) -> None:
        if self.experiment:
            self.experiment_id()
        else:
            self._call("POST", f"{API2}/experiments/search", json={"max_results": 1})
        self._load_schemas()

    # -- rules from the platform ----------------------------------------------------------

    def _label_schemas(self) -> list[dict[str, Any]]:
        """The experiment's label schemas (REST ``label-schemas/list``, every page)."""
        if not self.experiment:
            raise ConfigError(
                "reading MLflow label schemas needs the experiment: set target.experiment "
                "(its name or id) or MLFLOW_EXPERIMENT_NAME"
            )
        experiment_id = self.experiment_id()
        token = ""
        schemas: list[dict[str, Any]] = []
        while True:
            params: dict[str, Any] = {"experiment_id": experiment_id, "max_results": 100}
            if token:
                params["page_token"] = token
            response = self._call("GET", f"{API}/label-schemas/list", params=params)
            if response.status_code != 200:
                raise ConfigError(
                    f"cannot read the label schemas of experiment '{self.experiment}' "
                    f"({response.status_code} {_error_message(response)}); this needs MLflow "
                    "3.14 or later, or set label_schemas: false"
                )
            body = response.json()
            schemas.extend(body.get("label_schemas", []))
            token = body.get("next_page_token") or ""
            if not token:
                return schemas

    def _load_schemas(self) -> None:
        """Take value types, options and ranges from the experiment's label schemas."""
        if self._schemas_loaded or not self.config.label_schemas:
            return
        for schema in self._label_schemas():
            name = schema.get("name", "")
            if name in self._rules:
                self._rules[name] = self._schema_rule(name, schema)
        self._schemas_loaded = True

    def _schema_rule(self, name: str, schema: Mapping[str, Any]) -> ValueRule:
        kind = "expectation" if schema.get("type") == "EXPECTATION" else "feedback"
        configured = self._rules[name]
        if name in self.config.expectations and kind != "expectation":
            raise MappingError(
                self._path,
                f"'{name}' is listed as an expectation, but its MLflow label schema is "
                "feedback; remove it from target.expectations",
                key="target.expectations",
            )
        given = schema.get("input") or {}
        if "pass_fail" in given:
            spec = given["pass_fail"]
            rule = ValueRule(
                kind,
                "pass_fail",
                positive=spec.get("positive_label"),
                negative=spec.get("negative_label"),
            )
        elif "categorical" in given:
            spec = given["categorical"]
            rule = ValueRule(
                kind,
                "categorical_list" if spec.get("multi_select") else "categorical",
                options=tuple(spec.get("options") or ()),
            )
        elif "numeric" in given:
            spec = given["numeric"]
            rule = ValueRule(
                kind, "numeric", minimum=spec.get("min_value"), maximum=spec.get("max_value")
            )
        else:
            spec = given.get("text") or {}
            rule = ValueRule(kind, "text", max_length=spec.get("max_length"))
        if configured.value not in ("auto", rule.value):
            raise MappingError(
                self._path,
                f"values.{name} is {configured.value}, but the MLflow label schema '{name}' "
                f"is {rule.value}; remove values.{name} or fix the schema",
                key=f"target.values.{name}",
            )
        return ValueRule(
            rule.kind,
            rule.value,
            rule.positive,
            rule.negative,
            rule.options,
            rule.minimum,
            rule.maximum,
            rule.max_length,
            schema=name,
        )

    # -- what is sent ---------------------------------------------------------------------

    def _rule(self, name: str) -> ValueRule:
        return self._rules.get(name) or ValueRule(
            kind="expectation" if name in self.config.expectations else "feedback"
        )

    def _body(self, a: Annotation, trace_id: str | None) -> tuple[dict[str, Any], str | None]:
        """The assessment for one annotation, or why it cannot be sent as it is."""
        rule = self._rule(a.name)
        try:
            value, extra = to_value(a, rule)
        except NotSendable as exc:
            return {}, str(exc)
        source_type = SOURCE_TYPES.get(a.annotator_kind)
        if source_type is None:
            return {}, (
                f"annotator_kind '{a.annotator_kind}' is not one of HUMAN, LLM, CODE; MLflow "
                "would store it as UNSPECIFIED"
            )
        source_id = a.annotator or DEFAULT_SOURCE_ID
        if len(source_id) > MAX_SOURCE_ID:
            return {}, (
                f"annotator is {len(source_id):,} characters; MLflow keeps at most "
                f"{MAX_SOURCE_ID}: shorten it"
            )
        metadata = {str(k): str(v) for k, v in a.metadata.items() if v is not None}
        metadata.update(extra)
        if self.config.id_kind == "client_request_id":
            metadata["client_request_id"] = a.target_id
        body: dict[str, Any] = {
            "assessment_name": a.name,
            "source": {"source_type": source_type, "source_id": source_id},
        }
        if trace_id:
            body["assessment_id"] = assessment_id(trace_id, a.name, a.identifier)
            body["trace_id"] = trace_id
        if rule.kind == "expectation":
            body["expectation"] = {"value": value}
            if a.explanation:  # MLflow drops an expectation's rationale: keep it here
                metadata["rationale"] = a.explanation
        else:
            body["feedback"] = {"value": value}
            if a.explanation:
                body["rationale"] = a.explanation
        body["metadata"] = metadata
        return body, None

    def problems(self, a: Annotation) -> list[str]:
        """What MLflow would store wrongly or not at all, found before anything is sent.

        The pipeline marks such rows invalid: a value that does not fit its type or label
        schema, an unknown annotator kind (stored as UNSPECIFIED), an annotator longer than
        MLflow's column.
        """
        self._load_schemas()
        return [problem] if (problem := self._body(a, None)[1]) else []

    def payload(self, a: Annotation) -> dict[str, Any]:
        self._load_schemas()
        by_trace = self.config.id_kind == "trace_id"
        body, problem = self._body(a, a.target_id if by_trace else None)
        where = {"trace_id" if by_trace else "client_request_id": a.target_id}
        if problem:
            return {**where, "problem": problem}
        return {**where, "assessment": body}

    # -- sending --------------------------------------------------------------------------

    def send(
        self, annotations: Sequence[Annotation], progress: Progress | None = None
    ) -> list[Outcome]:
        done = progress or (lambda n: None)
        outcomes: dict[int, Outcome] = {}
        self._load_schemas()
        traces, refused = self._resolve(annotations)
        writes: list[_Write] = []
        claimed: dict[str, int] = {}
        for i, a in enumerate(annotations):
            if i in refused:
                outcomes[i] = Outcome.rejected(refused[i])
                continue
            info = traces.get(a.target_id)
            trace_id = str(info["trace_id"]) if info else a.target_id
            body, problem = self._body(a, trace_id)
            if problem:
                outcomes[i] = Outcome.rejected(problem)
                continue
            aid = body["assessment_id"]
            if aid in claimed:  # two rows, one assessment: the sheet must say which wins
                outcomes[i] = Outcome.rejected(
                    f"another row writes the same '{a.name}' on trace {trace_id} by the same "
                    f"annotator (row {annotations[claimed[aid]].metadata.get('row', '?')}); "
                    "keep one of them"
                )
                continue
            claimed[aid] = i
            w = _Write(i, a, trace_id, body)
            if info is not None:
                w.known = True
                held = {s.get("assessment_id"): s for s in info.get("assessments") or []}
                w.stored = held.get(aid)
                if w.stored is not None and not differences(body, w.stored):
                    outcomes[i] = Outcome.ok(aid)  # already there as sent: nothing to send
                    continue
            writes.append(w)
        if outcomes:
            done(len(outcomes))
        for w, outcome in self._run(writes, done):
            outcomes[w.index] = outcome
        return [outcomes[i] for i in range(len(annotations))]

    def _run(self, writes: Sequence[_Write], done: Progress) -> list[tuple[_Write, Outcome]]:
        """Write through a bounded pool, ``concurrency`` requests in flight.

        If MLflow stops answering after some writes landed, those are kept and the rest end
        failed (retried next run); if nothing landed, the run is "unreachable" (exit 3).
        Auth refusals always stop the run.
        """
        results: dict[int, Outcome] = {}
        lost: TargetUnreachable | None = None
        failures_in_a_row = 0
        queue = iter(writes)
        in_flight: dict[Future[Outcome], _Write] = {}
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:

            def refill() -> None:
                # a window, not everything at once: waiting on n futures costs O(n) each time
                while lost is None and len(in_flight) < 2 * self.config.concurrency:
                    w = next(queue, None)
                    if w is None:
                        return
                    in_flight[pool.submit(self._write, w)] = w

            try:
                refill()
                while in_flight:
                    finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    landed = 0
                    for f in finished:
                        w = in_flight.pop(f)
                        try:
                            results[w.index] = f.result()
                            landed += 1
                            failures_in_a_row = 0
                        except TargetUnreachable as exc:
                            # One write that failed after its retries fails its row only
                            # (retried next run, safe: the id is ours); many in a row mean
                            # MLflow is down: stop sending, keep draining what is in flight.
                            failures_in_a_row += 1
                            if exc.refused or failures_in_a_row >= STOP_AFTER_FAILURES:
                                lost = lost or exc
                            else:
                                results[w.index] = Outcome.failed(str(exc))
                    done(landed)
                    refill()
            except BaseException:
                for f in in_flight:
                    f.cancel()
                raise
        if lost is not None:
            if all(o.status == Status.FAILED for o in results.values()):
                raise lost  # nothing landed: the run is "unreachable", exit 3
            gone = Outcome.failed(f"MLflow stopped answering during the sync ({lost})")
            for w in writes:
                results.setdefault(w.index, gone)
        return [(w, results[w.index]) for w in writes]

    def _write(self, w: _Write) -> Outcome:
        """Create, update or replace one assessment so that it holds ``w.body``.

        When the server's state was not read first (trace ids), a new row is created and an
        edited row is PATCHed; each answer says what to do if that guess was wrong.
        """
        if not w.known:
            return self._update(w) if w.annotation.is_update else self._create(w)
        if w.stored is None:
            return self._create(w)
        if {"kind", "source"} & set(differences(w.body, w.stored)):
            return self._replace(w)
        return self._update(w)

    def _path_for(self, w: _Write, aid: str | None = None) -> str:
        tid = urllib.parse.quote(w.trace_id, safe="")
        base = f"{API}/traces/{tid}/assessments"
        return f"{base}/{urllib.parse.quote(aid, safe='')}" if aid else base

    def _create(self, w: _Write, again: bool = True) -> Outcome:
        response = self._call("POST", self._path_for(w), json={"assessment": w.body})
        if response.status_code == 200:
            return self._confirm(w, response.json().get("assessment", {}))
        if response.status_code == 409 and again:
            # it exists: an earlier attempt landed (a retry after a timeout, a lost status)
            got = self._call("GET", self._path_for(w, w.body["assessment_id"]))
            if got.status_code == 200:
                w.known, w.stored = True, got.json().get("assessment", {})
                if w.stored is not None and not differences(w.body, w.stored):
                    return Outcome.ok(w.body["assessment_id"])
                return self._write(w)
            return Outcome.failed(
                f"MLflow refused assessment id {w.body['assessment_id']} as taken but does not "
                f"show it on trace {w.trace_id} ({got.status_code})"
            )
        return self._refused(w, response)

    def _update(self, w: _Write) -> Outcome:
        kind = "expectation" if "expectation" in w.body else "feedback"
        patch: dict[str, Any] = {kind: w.body[kind], "metadata": w.body["metadata"]}
        mask = [kind, "metadata"]
        if kind == "feedback":
            patch["rationale"] = w.body.get("rationale", "")
            mask.append("rationale")
        response = self._call(
            "PATCH",
            self._path_for(w, w.body["assessment_id"]),
            # camelCase paths: MLflow answers 200 to snake_case ones and changes nothing
            json={"assessment": patch, "update_mask": ",".join(mask)},
        )
        if response.status_code == 200:
            stored = response.json().get("assessment", {})
            if not w.known and "source" in differences(w.body, stored):
                w.known, w.stored = True, stored  # the annotator kind changed: replace it
                return self._replace(w)
            return self._confirm(w, stored)
        if response.status_code == 404:  # not there (new trace id, or deleted): create it
            return self._create(w, again=w.known)
        if response.status_code == 400 and "Cannot update" in _error_message(response):
            return self._replace(w)  # feedback <-> expectation
        return self._refused(w, response)

    def _replace(self, w: _Write) -> Outcome:
        """Source and kind cannot be PATCHed: delete and create again, with the same id."""
        response = self._call("DELETE", self._path_for(w, w.body["assessment_id"]))
        if response.status_code != 200:
            return self._refused(w, response)
        w.known, w.stored = True, None
        return self._create(w, again=False)

    def _confirm(self, w: _Write, stored: Mapping[str, Any]) -> Outcome:
        """The server answers with what it stored: it must be what we sent."""
        wrong = differences(w.body, stored)
        if wrong:
            return Outcome.rejected(
                f"MLflow stored a different {', '.join(wrong)} than was sent; check the "
                f"assessment {w.body['assessment_id']} on trace {w.trace_id}"
            )
        return Outcome.ok(str(stored.get("assessment_id") or w.body["assessment_id"]))

    def _refused(self, w: _Write, response: requests.Response) -> Outcome:
        detail = _error_message(response)
        if response.status_code == 404 and "Trace with ID" in detail:
            return Outcome.rejected(
                f"MLflow has no trace '{w.trace_id}'; check the id (copy it from the trace in "
                "the MLflow UI; the row is retried next run)"
            )
        if 400 <= response.status_code < 500:
            return Outcome.rejected(f"MLflow answered {response.status_code}: {detail}")
        return Outcome.failed(f"MLflow answered {response.status_code}: {detail}")

    # -- which trace each row is about ----------------------------------------------------

    def _resolve(
        self, annotations: Sequence[Annotation]
    ) -> tuple[dict[str, dict[str, Any]], dict[int, str]]:
        """Trace info (with its assessments) per request id in the sheet, and rows that have
        none. Trace ids are not looked up: a write to an unknown trace answers 404."""
        if self.config.id_kind != "client_request_id":
            return {}, {}
        ids = list(dict.fromkeys(a.target_id for a in annotations))
        found, problems = self._by_request_id(ids)
        refused = {
            i: problems[a.target_id] for i, a in enumerate(annotations) if a.target_id in problems
        }
        return found, refused

    def _trace_pages(self, body: dict[str, Any], fix: str) -> Iterator[list[dict[str, Any]]]:
        """The traces of a traces/search, page by page (page tokens followed).

        :param fix: what the error says to do when MLflow refuses the search.
        """
        token = ""
        while True:
            paged = {**body, "page_token": token} if token else body
            response = self._call("POST", f"{API}/traces/search", json=paged)
            if response.status_code != 200:
                raise ConfigError(
                    f"MLflow refused the trace search ({response.status_code} "
                    f"{_error_message(response)}); {fix}"
                )
            page = response.json()
            yield [i for i in page.get("traces", []) if isinstance(i, dict)]
            token = page.get("next_page_token") or ""
            if not token:
                return

    def _by_request_id(self, ids: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """Resolve client_request_ids in bulk (``IN (...)``), within the experiment."""
        experiment_id = self.experiment_id()
        matches: dict[str, list[dict[str, Any]]] = {rid: [] for rid in ids}
        for part in chunks(ids, IDS_PER_LOOKUP):
            body: dict[str, Any] = {
                "locations": [
                    {
                        "type": "MLFLOW_EXPERIMENT",
                        "mlflow_experiment": {"experiment_id": experiment_id},
                    }
                ],
                "filter": "attributes.client_request_id IN ("
                + ", ".join(_quote(r) for r in part)
                + ")",
                "max_results": SEARCH_PAGE,
            }
            for infos in self._trace_pages(body, "annobridge needs the trace API of MLflow 3"):
                for info in infos:
                    rid = info.get("client_request_id")
                    if rid in matches:
                        matches[rid].append(info)
        found: dict[str, dict[str, Any]] = {}
        problems: dict[str, str] = {}
        for rid, infos in matches.items():
            if len(infos) == 1:
                found[rid] = infos[0]
            elif not infos:
                problems[rid] = (
                    f"no trace with request id '{rid}' in experiment '{self.experiment}'; check "
                    "the id (a trace can take a moment to be logged; the row is retried next run)"
                )
            else:
                listed = ", ".join(sorted(i["trace_id"] for i in infos)[:MAX_LISTED])
                more = f" and {len(infos) - MAX_LISTED} more" if len(infos) > MAX_LISTED else ""
                problems[rid] = (
                    f"request id '{rid}' matches {len(infos)} traces in experiment "
                    f"'{self.experiment}' ({listed}{more}); label them by trace id instead "
                    "(id_kind: trace_id)"
                )
        return found, problems

    # -- export and rules from the platform (optional Target methods) -------------------

    def _export_experiment(self) -> str:
        if not self.experiment:
            raise ConfigError(
                "export and rules need the experiment: set target.experiment (its name or id) "
                "or MLFLOW_EXPERIMENT_NAME"
            )
        found = self.experiment_id()
        if found is None:  # pragma: no cover - experiment_id() raises when it finds none
            raise ConfigError(f"MLflow has no experiment '{self.experiment}'")
        return found

    def export_records(self, query: ExportQuery) -> Iterator[ExportRecord]:
        """The experiment's traces, oldest first, page by page (traces/search), with the
        request and response previews (or, with ``full_text``, the root span's full inputs
        and outputs from traces/batchGet). Each record carries the names of ``query.names``
        it already holds as valid assessments of the query's annotator kinds. With
        ``id_kind: client_request_id`` the id is the request id; traces without one are
        left out (and said so in the log).

        :raises ConfigError: no experiment, or a filter MLflow refuses.
        """
        import logging

        from bridge.export import ExportRecord

        experiment_id = self._export_experiment()
        clauses: list[str] = []
        if query.since is not None:
            clauses.append(f"attributes.timestamp_ms >= {int(query.since.timestamp() * 1000)}")
        if query.until is not None:
            clauses.append(f"attributes.timestamp_ms < {int(query.until.timestamp() * 1000)}")
        clauses.extend(f.strip() for f in query.filters if f.strip())
        body: dict[str, Any] = {
            "locations": [
                {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}}
            ],
            "max_results": max(1, min(query.page_size, SEARCH_PAGE)),
            "order_by": ["timestamp_ms ASC"],
        }
        if clauses:
            body["filter"] = " AND ".join(clauses)
        sources = {SOURCE_TYPES.get(k, k) for k in query.annotator_kinds}
        by_request_id = self.config.id_kind == "client_request_id"
        without_id = 0
        pages = self._trace_pages(
            body, "a --filter is an MLflow search expression, e.g. --filter \"tags.env = 'prod'\""
        )
        for infos in pages:
            full = (
                self._export_full([str(i.get("trace_id")) for i in infos])
                if query.full_text
                else {}
            )
            for info in infos:
                trace_id = str(info.get("trace_id") or "")
                rid = str(info.get("client_request_id") or "") if by_request_id else trace_id
                if not rid:
                    without_id += 1
                    continue
                held = {
                    str(a.get("assessment_name"))
                    for a in info.get("assessments") or []
                    if a.get("valid", True) is not False
                    and (a.get("source") or {}).get("source_type") in sources
                    and a.get("assessment_name") in query.names
                }
                request, answer = full.get(
                    trace_id,
                    (_preview(info.get("request_preview")), _preview(info.get("response_preview"))),
                )
                yield ExportRecord(
                    record_id=rid,
                    input=request,
                    output=answer,
                    start_time=_export_time(info.get("request_time")),
                    url=f"{self.base_url}/#/experiments/{experiment_id}/traces"
                    f"?selectedEvaluationId={urllib.parse.quote(trace_id, safe='')}",
                    annotated=frozenset(held),
                )
            if not infos:
                break
        if without_id:
            logging.getLogger(__name__).warning(
                "%d traces have no client_request_id and were not exported (id_kind: "
                "client_request_id)",
                without_id,
            )

    def _export_full(self, trace_ids: list[str]) -> dict[str, tuple[str | None, str | None]]:
        """The root span's full inputs and outputs of each trace (traces/batchGet)."""
        out: dict[str, tuple[str | None, str | None]] = {}
        for part in chunks(trace_ids, IDS_PER_LOOKUP):
            response = self._call("GET", f"{API}/traces/batchGet", params={"trace_ids": list(part)})
            if response.status_code != 200:
                raise ConfigError(
                    f"MLflow did not return the full traces ({response.status_code} "
                    f"{_error_message(response)}); export without --full-text to use the "
                    "previews"
                )
            for trace in response.json().get("traces", []):
                info = trace.get("trace_info") or {}
                spans = trace.get("spans") or []
                root = next((sp for sp in spans if not sp.get("parent_span_id")), None)
                attributes = _span_attributes(root or {})
                out[str(info.get("trace_id"))] = (
                    attributes.get("mlflow.spanInputs"),
                    attributes.get("mlflow.spanOutputs"),
                )
        return out

    def fetch_rules(self, names: Sequence[str]) -> dict[str, PlatformRule]:
        """The rules of the experiment's label schemas with these names."""
        from bridge.platform_rules import from_mlflow_schema

        self._export_experiment()  # says what to set when there is no experiment
        return {
            str(schema["name"]): from_mlflow_schema(schema)
            for schema in self._label_schemas()
            if schema.get("name") in names
        }


def _span_attributes(span: Mapping[str, Any]) -> dict[str, str]:
    """An OpenTelemetry span's attributes as text: a string as it is, anything else as JSON
    (the way MLflow writes its request and response previews)."""
    out: dict[str, str] = {}
    for item in span.get("attributes") or []:
        value = _any_value(item.get("value") or {})
        out[str(item.get("key"))] = (
            value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        )
    return out


def _any_value(value: Mapping[str, Any]) -> Any:
    """An OpenTelemetry AnyValue (as MLflow's JSON gives it) as a Python value."""
    for key in ("string_value", "stringValue"):
        if key in value:
            return value[key]
    for key in ("bool_value", "boolValue"):
        if key in value:
            return bool(value[key])
    for key in ("int_value", "intValue"):
        if key in value:
            return int(value[key])
    for key in ("double_value", "doubleValue"):
        if key in value:
            return float(value[key])
    for key in ("kvlist_value", "kvlistValue"):
        if key in value:
            pairs = (value[key] or {}).get("values") or []
            return {str(p.get("key")): _any_value(p.get("value") or {}) for p in pairs}
    for key in ("array_value", "arrayValue"):
        if key in value:
            return [_any_value(v or {}) for v in (value[key] or {}).get("values") or []]
    return None


def _preview(text: Any) -> str | None:
    """A request or response preview; a JSON string literal (a whole one) as its text."""
    if not isinstance(text, str):
        return None
    try:
        decoded = json.loads(text)
    except ValueError:
        return text  # cut at 1000 characters, or not JSON: as it is
    return decoded if isinstance(decoded, str) else text


def _export_time(value: Any) -> datetime.datetime | None:
    """An RFC 3339 time (nanoseconds cut to microseconds)."""
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
