"""Arize's GraphQL API: ``updateAnnotations`` mutations, one per annotation,
``mutations_per_request`` of them per HTTP request under aliases ``a0, a1, ...``, within the
documented 300 mutations a minute.

The documented mutation (the Annotations API page,
https://www.arize.com/docs/ax/resources/graphql-api/annotations-api) takes a label or a
score, with the matching ``annotationType``, and a ``startTime`` at most 24 h before the
record's start. An error of one mutation (by ``path``, or by the variable it names) rejects
that row only; an error of the whole document splits the request until the culprit is alone.
``input_shape: annotation_updates`` sends the newer input (``annotationUpdates`` with
``annotationConfigId``), whose business errors come back in-band as ``result { message }``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from bridge.errors import AuthRefused, ConfigError, UnexpectedAnswer
from bridge.http import unexpected_shape
from bridge.records import Annotation, Outcome, Status
from bridge.targets.arize.client import (
    AUTH_HINT,
    NOT_THE_API,
    PLATFORM,
    ArizeClient,
    answer_of,
    json_body,
)
from bridge.targets.arize.common import iso, remote_id, start_time
from bridge.targets.arize.config import ArizeConfig
from bridge.targets.arize.graphql import Operation, assign_errors, document, is_retryable, literal
from bridge.targets.arize.ratelimit import RateLimiter
from bridge.targets.base import Progress, chunks

_SPLIT_STATUSES = (400, 404, 409, 413, 422)
_NOT_FOUND_HINT = (
    "check the id, and that the record started at most 24 h after startTime "
    "(start_time or start_time_column in the mapping)"
)
_LEGACY_SELECTION = "{ clientMutationId }"
_RESULT_SELECTION = (
    "{ result { __typename ... on UpdateAnnotationSuccess { success } "
    "... on UpdateAnnotationError { message } } }"
)


class GraphqlSender:
    """Annotations as GraphQL mutations (``api: graphql``)."""

    def __init__(self, config: ArizeConfig, client: ArizeClient, limiter: RateLimiter) -> None:
        self.config = config
        self.client = client
        self.limiter = limiter

    def payload(self, a: Annotation) -> dict[str, Any]:
        """The variables of the documented mutation, or the newer input."""
        if self.config.input_shape == "annotation_updates":
            return self._update_input(a)
        return self._legacy_values(a)

    def send(
        self, ready: Sequence[tuple[int, Annotation]], outcomes: dict[int, Outcome], done: Progress
    ) -> None:
        """Send ``mutations_per_request`` mutations per request; settle each row in ``outcomes``."""
        per_request = min(self.config.mutations_per_request, self.limiter.limit)
        for batch in chunks(ready, per_request):
            settled = self._send_mutations(list(batch))
            outcomes.update(settled)
            done(len(settled))

    def problems(self, a: Annotation) -> list[str]:
        """What the documented mutation refuses: a label and a score, or neither."""
        out: list[str] = []
        if a.label is not None and a.score is not None:
            out.append(
                f"Arize's GraphQL API takes a label or a score for '{a.name}', not both; "
                "map them as two annotations (one with label_column, one with "
                "score_column), or use api: rest"
            )
        elif a.label is None and a.score is None and not self._text_annotation(a):
            out.append(
                f"Arize needs a label or a score for '{a.name}'; an explanation alone "
                "cannot be sent as a label or score annotation"
            )
        return out

    def check(self) -> None:
        """A test query: the URL is a GraphQL API and the key is accepted."""
        response = self.client.call(
            "POST", "/graphql", json={"query": "query check { __typename }"}
        )
        body = _graphql_answer(response)
        if not isinstance(body, dict) or not ("data" in body or "errors" in body):
            raise ConfigError(
                f"{self.client.base_url}/graphql did not answer as a GraphQL API "
                f"({response.status_code}: {response.text.strip()[:200]}); check target.url "
                "(default https://app.arize.com)"
            )
        errors = assign_errors(body, []).general
        if errors:
            detail = "; ".join(errors)[:300]
            if any(w in detail.lower() for w in ("auth", "api key", "forbidden", "permission")):
                raise AuthRefused(f"{PLATFORM} refused the request ({detail}); {AUTH_HINT}")
            raise ConfigError(f"Arize's GraphQL API refused a test query ({detail})")

    def _text_annotation(self, a: Annotation) -> bool:
        """The newer input has a text annotation type: an explanation alone is sent as one."""
        return (
            self.config.input_shape == "annotation_updates"
            and a.label is None
            and a.score is None
            and a.explanation is not None
        )

    def _legacy_values(self, a: Annotation) -> dict[str, Any]:
        """The documented variables of one annotation (Annotations API page), in its order."""
        values: dict[str, Any] = {"name": a.name}
        if a.annotator:
            values["updatedBy"] = a.annotator
        if a.label is not None:
            values["label"] = a.label
            values["annotationType"] = "label"
        elif a.score is not None:
            values["score"] = a.score
            values["annotationType"] = "score"
        values["modelId"] = self.config.model_id
        if a.explanation is not None:
            values["note"] = a.explanation
        values["modelEnvironment"] = self.config.environment
        values["recordId"] = a.target_id
        start = start_time(self.config, a)
        values["startTime"] = iso(start) if start else None
        return values

    def _update_input(self, a: Annotation) -> dict[str, Any]:
        """The newer UpdateAnnotationsInput of one annotation."""
        annotation: dict[str, Any] = {"name": a.name}
        if a.annotator:
            annotation["updatedBy"] = a.annotator
        if a.label is not None:
            annotation.update(annotationType="label", label=a.label)
        elif a.score is not None:
            annotation.update(annotationType="score", score=a.score)
        elif a.explanation is not None:
            annotation.update(annotationType="text", text=a.explanation)
        value: dict[str, Any] = {
            "modelId": self.config.model_id,
            "recordId": a.target_id,
            "modelEnvironment": self.config.environment,
            "annotationUpdates": [
                {
                    "annotationConfigId": self.config.annotation_config_ids.get(a.name),
                    "annotation": annotation,
                }
            ],
        }
        start = start_time(self.config, a)
        if start is not None:
            value["startTime"] = iso(start)
        if a.explanation is not None and not self._text_annotation(a):
            value["note"] = {"text": a.explanation}
        return value

    def _operation(self, alias: str, a: Annotation) -> Operation:
        if self.config.input_shape == "annotation_updates":
            return Operation(
                alias,
                f"updateAnnotations(input: ${alias})",
                _RESULT_SELECTION,
                {alias: ("UpdateAnnotationsInput!", self._update_input(a))},
            )
        values = self._legacy_values(a)
        variables: dict[str, tuple[str, Any]] = {}

        def var(name: str, gql_type: str) -> str:
            variables[f"{alias}_{name}"] = (gql_type, values[name])
            return f"${alias}_{name}"

        fields: list[tuple[str, str]] = [("modelId", "$modelId")]
        if "note" in values:
            fields.append(("note", literal([("text", var("note", "String!"))])))
        annotation = [("name", var("name", "String!"))]
        if "updatedBy" in values:
            annotation.append(("updatedBy", var("updatedBy", "String")))
        if "label" in values:
            annotation.append(("label", var("label", "String")))
        if "score" in values:
            annotation.append(("score", var("score", "Float")))
        annotation.append(("annotationType", var("annotationType", "AnnotationType!")))
        fields += [
            ("annotations", literal(annotation)),
            ("modelEnvironment", "$modelEnvironment"),
            ("recordId", var("recordId", "String!")),
            ("startTime", var("startTime", "DateTime!")),
        ]
        return Operation(
            alias, f"updateAnnotations(input: {literal(fields)})", _LEGACY_SELECTION, variables
        )

    def _document(self, items: Sequence[tuple[int, Annotation]]) -> dict[str, Any]:
        operations = [self._operation(f"a{k}", a) for k, (_, a) in enumerate(items)]
        if self.config.input_shape == "annotation_updates":
            text, variables = document("mutation", "updateAnnotations", operations)
            return {"query": text, "variables": variables, "operationName": "updateAnnotations"}
        shared = {
            "modelId": ("ID!", self.config.model_id),
            "modelEnvironment": ("ModelEnvironmentName!", self.config.environment),
        }
        text, variables = document("mutation", "addAnnotations", operations, shared)
        return {"query": text, "variables": variables, "operationName": "addAnnotations"}

    def _send_mutations(self, items: list[tuple[int, Annotation]]) -> dict[int, Outcome]:
        """Send aliased mutations; map each alias's result or errors to its row."""
        out: dict[int, Outcome] = {}
        pending = items
        while pending:
            self.limiter.acquire(len(pending))
            response = self.client.call("POST", "/graphql", json=self._document(pending))
            body = _graphql_answer(response)
            if not isinstance(body, dict) or not ("data" in body or "errors" in body):
                detail = response.text.strip()[:300]
                if response.status_code in _SPLIT_STATUSES and len(pending) > 1:
                    return {**out, **self._split(pending)}
                status = Status.REJECTED if response.status_code < 500 else Status.FAILED
                for i, _ in pending:
                    out[i] = Outcome(status, f"Arize answered {response.status_code}: {detail}")
                return out
            aliases = [f"a{k}" for k in range(len(pending))]
            errors = assign_errors(body, aliases)
            data = body.get("data")
            if not isinstance(data, dict):
                # Nothing ran: the document was refused before execution.
                if errors.by_alias:
                    for (i, _), alias in zip(pending, aliases, strict=True):
                        if alias in errors.by_alias:
                            out[i] = _error_outcome(errors.by_alias[alias])
                    pending = [
                        p
                        for p, alias in zip(pending, aliases, strict=True)
                        if alias not in errors.by_alias
                    ]
                    continue
                if len(pending) > 1 and not any(is_retryable(m) for m in errors.general):
                    return {**out, **self._split(pending)}
                for i, _ in pending:
                    out[i] = _error_outcome(errors.general or ["no data and no error"])
                return out
            for (i, a), alias in zip(pending, aliases, strict=True):
                if alias in errors.by_alias:
                    out[i] = _error_outcome(errors.by_alias[alias])
                    continue
                result = data.get(alias)
                if not isinstance(result, dict):
                    out[i] = _error_outcome(errors.general or ["Arize returned no result"])
                    continue
                out[i] = self._result_outcome(a, result)
            return out
        return out

    def _split(self, pending: list[tuple[int, Annotation]]) -> dict[int, Outcome]:
        """One mutation the server refuses must not sink the request: halve until alone."""
        half = len(pending) // 2
        return {**self._send_mutations(pending[:half]), **self._send_mutations(pending[half:])}

    def _result_outcome(self, a: Annotation, result: Mapping[str, Any]) -> Outcome:
        if self.config.input_shape == "annotations":
            return Outcome.ok(remote_id(a))  # documented selection: { clientMutationId }
        inner = result.get("result")
        if isinstance(inner, dict):
            if inner.get("success") is True:
                return Outcome.ok(remote_id(a))
            if inner.get("message"):
                return _error_outcome([str(inner["message"])])
        return Outcome.failed(f"Arize returned an unexpected result: {json.dumps(result)[:200]}")


def _error_outcome(messages: Sequence[str]) -> Outcome:
    text = "; ".join(dict.fromkeys(messages))[:300]
    if any(is_retryable(m) for m in messages):
        return Outcome.failed(f"Arize: {text}")
    lowered = text.lower()
    if "not found" in lowered or "does not exist" in lowered or "no record" in lowered:
        return Outcome.rejected(f"Arize: {text}; {_NOT_FOUND_HINT}")
    return Outcome.rejected(f"Arize: {text}")


def _graphql_answer(response: requests.Response) -> Any:
    """A 200 answer is GraphQL's ``{data, errors}`` (a sign-in page or another shape is
    UnexpectedAnswer); another status's JSON, or None, is for the caller to say."""
    if response.status_code != 200:
        return json_body(response)
    body = answer_of(response)
    if "data" not in body and "errors" not in body:
        shape = "an object without data or errors where a GraphQL answer"
        raise UnexpectedAnswer(unexpected_shape(response, PLATFORM, shape, NOT_THE_API))
    return body
