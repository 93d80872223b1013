"""How the Phoenix target lays out its requests on a real Phoenix, seen from the wire.

Each request the target makes goes through a recording Session (method, path, query, the
thread that made it, and what came back), so these tests check the promises of
``bridge.targets.phoenix`` directly: batches overlap but never more than
``max_unconfirmed`` rows are queued unconfirmed, a batch is read back whole only once its
last row is there, and only a sample of a batch's spans is checked unless one is missing.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from bridge.records import Annotation, Outcome, Status
from bridge.targets.phoenix.config import PhoenixConfig
from bridge.targets.phoenix.target import PROBE_SPANS, PhoenixTarget, probe_sample
from tests.servers import PhoenixServer

pytestmark = pytest.mark.phoenix

_names = itertools.count()


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    thread: str
    status: int
    body: Any = None
    sent: Any = None


@dataclass
class Wire(requests.Session):
    """A Session that remembers every request and its answer, in order."""

    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        response = super().request(method, url, *args, **kwargs)
        parts = urlsplit(response.request.url or "")
        try:
            body = response.json()
        except ValueError:
            body = None
        with self.lock:
            self.calls.append(
                Call(
                    str(method),
                    parts.path,
                    parse_qs(parts.query),
                    threading.current_thread().name,
                    response.status_code,
                    body,
                    kwargs.get("json"),
                )
            )
        return response

    def posts(self) -> list[Call]:
        return [c for c in self.calls if c.method == "POST"]


def spans_of(seeded: list[dict[str, str]]) -> list[str]:
    return [s["span_id"] for s in seeded] + [s["llm_span_id"] for s in seeded]


def annotations(span_ids: list[str], name: str) -> list[Annotation]:
    return [
        Annotation(
            row_index=i,
            name=name,
            kind="span",
            target_id=s,
            label="correct" if i % 2 else "incorrect",
            score=(i % 10) / 10,
            explanation=f"row {i}",
            annotator="sme",
            annotator_kind="HUMAN",
            identifier="annobridge:sme",
            metadata={"row": i + 2},
        )
        for i, s in enumerate(span_ids)
    ]


def target(url: str, wire: Wire, **config: Any) -> PhoenixTarget:
    return PhoenixTarget(
        PhoenixConfig(type="phoenix", url=url, project="tests", **config), session=wire
    )


def send_over_wire(url: str, batch: list[Annotation], **config: Any) -> tuple[Wire, list[Outcome]]:
    """Send through a fresh target whose every request is recorded."""
    wire = Wire()
    t = target(url, wire, **config)
    try:
        return wire, t.send(batch)
    finally:
        t.close()


def read_backs(wire: Wire) -> list[Call]:
    return [c for c in wire.calls if c.method == "GET" and c.path.endswith("/span_annotations")]


def test_batches_overlap_and_never_more_than_max_unconfirmed_are_queued(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]]
) -> None:
    spans = spans_of(seeded_spans)[:30]
    name = f"pipelined_{next(_names)}"
    wire, outcomes = send_over_wire(
        phoenix.url, annotations(spans, name), batch_size=5, max_unconfirmed=10
    )
    assert [o.status for o in outcomes] == [Status.SYNCED] * len(spans)
    landed = [a for a in phoenix.span_annotations(spans, "tests") if a["name"] == name]
    assert len(landed) == len(spans)

    # Replay the wire: a batch is queued by its POST and confirmed by the read-back that
    # returned all of its rows.
    batches: list[set[str]] = []
    unconfirmed: list[set[str]] = []
    most = 0
    for call in wire.calls:
        if call.method == "POST":
            assert call.query == {"sync": ["false"]}
            batch = {s for s in spans[len(batches) * 5 : len(batches) * 5 + 5]}
            batches.append(batch)
            unconfirmed.append(set(batch))
            most = max(most, sum(len(b) for b in unconfirmed))
        elif call.method == "GET" and call.path.endswith("/span_annotations") and call.body:
            got = {a["span_id"] for a in call.body["data"] if a["name"] == name}
            for b in unconfirmed:
                b -= got
            unconfirmed = [b for b in unconfirmed if b]
    assert len(batches) == 6
    assert most == 10  # two batches in flight: the next is queued while one is inserted
    assert not unconfirmed
    # the second batch went out before the first was read back whole
    first_whole = next(i for i, c in enumerate(wire.calls) if len(c.query.get("span_ids", [])) > 1)
    second_post = [i for i, c in enumerate(wire.calls) if c.method == "POST"][1]
    assert second_post < first_whole


def test_a_batch_is_read_back_whole_only_once_its_last_row_is_there(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]]
) -> None:
    spans = spans_of(seeded_spans)[:12]
    name = f"last_row_{next(_names)}"
    wire, outcomes = send_over_wire(
        phoenix.url, annotations(spans, name), batch_size=4, max_unconfirmed=4
    )
    assert [o.status for o in outcomes] == [Status.SYNCED] * len(spans)
    reads = read_backs(wire)
    for b in range(3):
        batch = spans[b * 4 : b * 4 + 4]
        whole = [r for r in reads if sorted(r.query["span_ids"]) == sorted(batch)]
        assert whole, f"batch {b} was never read back whole"
        before = reads[: reads.index(whole[0])]
        looks = [r for r in before if r.query["span_ids"] == [batch[-1]]]
        assert looks, f"batch {b} was read back before its last row was looked for"
        # the last look before the whole read found the last row, as sent
        found = [a for a in looks[-1].body["data"] if a["name"] == name]
        assert [a["result"]["label"] for a in found] == [
            "correct" if (b * 4 + 3) % 2 else "incorrect"
        ]
        # until its last row was found, this batch was only looked at one span at a time
        touching = [r for r in before if set(r.query["span_ids"]) & set(batch)]
        assert all(len(r.query["span_ids"]) == 1 for r in touching)


def span_checks(wire: Wire) -> list[list[str]]:
    return [
        c.query["span_id"] for c in wire.calls if c.method == "GET" and c.path.endswith("/spans")
    ]


def test_probe_sample_spreads_over_the_batch_and_always_takes_the_last() -> None:
    ids = [f"{i:016x}" for i in range(1000)]
    sample = probe_sample(ids)
    assert len(sample) == PROBE_SPANS == len(set(sample))
    assert sample[0] == ids[0] and sample[-1] == ids[-1]
    assert sample == sorted(sample)  # in batch order
    gaps = [ids.index(b) - ids.index(a) for a, b in zip(sample, sample[1:], strict=False)]
    assert max(gaps) - min(gaps) <= 1  # evenly spread
    assert probe_sample(ids[:7]) == ids[:7]
    assert probe_sample(ids[:2], size=2) == ids[:2]


def test_only_a_sample_of_known_spans_is_checked(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]]
) -> None:
    spans = spans_of(seeded_spans)  # 80 spans, one batch
    name = f"sampled_{next(_names)}"
    wire, outcomes = send_over_wire(phoenix.url, annotations(spans, name))
    assert [o.status for o in outcomes] == [Status.SYNCED] * len(spans)
    assert span_checks(wire) == [probe_sample(spans)]
    assert len(span_checks(wire)[0]) == PROBE_SPANS < len(spans)


def test_a_missing_span_in_the_sample_checks_them_all_and_only_known_ones_are_queued(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]]
) -> None:
    spans = spans_of(seeded_spans)
    ghost = "0123456789abcdef"
    ids = [*spans[:40], ghost, *spans[40:]]
    assert ghost not in probe_sample(ids)
    ids[-1], ids[40] = ids[40], ids[-1]  # the ghost last: the sample always holds the last
    name = f"ghost_sampled_{next(_names)}"
    wire, outcomes = send_over_wire(phoenix.url, annotations(ids, name))
    assert span_checks(wire) == [probe_sample(ids), ids]
    queued = [c for c in wire.posts() if c.query == {"sync": ["false"]}]
    assert [len(c.sent["data"]) for c in queued] == [len(spans)]
    assert ghost not in {d["span_id"] for d in queued[0].sent["data"]}
    assert outcomes[-1].status == Status.REJECTED
    assert f"no span '{ghost}'" in outcomes[-1].message
    assert [o.status for o in outcomes[:-1]] == [Status.SYNCED] * len(spans)


def test_a_missing_span_that_slips_past_the_sample_is_rejected_without_waiting(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]]
) -> None:
    spans = spans_of(seeded_spans)
    ghost = "fedcba9876543210"
    ids = [*spans[:40], ghost, *spans[40:]]
    assert ghost not in probe_sample(ids)
    name = f"ghost_unsampled_{next(_names)}"
    wire, outcomes = send_over_wire(phoenix.url, annotations(ids, name))
    assert span_checks(wire) == [probe_sample(ids)]  # the sample found them all
    assert outcomes[40].status == Status.REJECTED
    assert f"no span '{ghost}'" in outcomes[40].message
    assert [o.status for i, o in enumerate(outcomes) if i != 40] == [Status.SYNCED] * 80
    # the batch was read back whole once, after its last row was found: the missing row went
    # to sync=true at once instead of being read back again until confirm_timeout
    whole = [r for r in read_backs(wire) if len(r.query["span_ids"]) > 1]
    assert len(whole) == 1
    after = wire.calls[wire.calls.index(whole[0]) + 1 :]
    assert [(c.method, c.query, c.status) for c in after] == [("POST", {"sync": ["true"]}, 404)]
    assert [d["span_id"] for d in after[0].sent["data"]] == [ghost]
