"""Confirmed-delivery annotations per second into one local Phoenix, four ways, same run.

    make bench            # or: .venv/bin/python benchmarks/phoenix_throughput.py --rounds 3

Starts one Phoenix (temp data dir), seeds 10,000 spans through OpenTelemetry, then each
round, for every method, writes one new annotation on every span (a fresh annotation name
per method and round, so every method inserts) and counts what landed by reading it back:

- annobridge: `annobridge sync` of a 10,000-row workbook, end to end (process start, read,
  validate, send, confirm, write the statuses back), as a user runs it;
- official client sync=True: arize-phoenix-client `log_span_annotations_dataframe`;
- official client sync=False: the same, unconfirmed; timed until every row had landed;
- raw requests: POST /v1/span_annotations?sync=true in batches of 1000.

Rate = annotations landed / seconds until landed. Medians over the rounds; ratios against
the official client with sync=True, the baseline the target is stated against.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import openpyxl
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import PhoenixServer, phoenix_python  # noqa: E402

PROJECT = "bench"


def count_landed(server: PhoenixServer, span_ids: list[str], name: str) -> int:
    return sum(1 for a in server.span_annotations(span_ids, PROJECT) if a["name"] == name)


def wait_landed(
    server: PhoenixServer, span_ids: list[str], name: str, started: float, patience: float = 15
) -> tuple[int, float]:
    """Poll until every annotation landed, or nothing new landed for ``patience`` seconds."""
    best, best_at = -1, time.time()
    while True:
        n = count_landed(server, span_ids, name)
        now = time.time()
        if n > best:
            best, best_at = n, now
        if n == len(span_ids) or now - best_at > patience:
            return best, best_at - started
        time.sleep(0.2)


def run_annobridge(server: PhoenixServer, span_ids: list[str], name: str, work: Path) -> float:
    book = openpyxl.Workbook(write_only=True)
    ws = book.create_sheet("Labels")
    ws.append(["span_id", "label", "score", "explanation", "annotator"])
    for i, s in enumerate(span_ids):
        ws.append([s, "correct" if i % 2 else "incorrect", float(i % 2), f"bench row {i}", "sme"])
    book.save(work / f"{name}.xlsx")
    mapping = work / f"{name}.yaml"
    mapping.write_text(
        f"""
source: {{type: excel, path: {name}.xlsx, worksheet: Labels}}
target: {{type: phoenix, url: "{server.url}", project: {PROJECT}}}
annotations:
  - name: {name}
    id_column: span_id
    label_column: label
    score_column: score
    explanation_column: explanation
    annotator_column: annotator
    rules: {{labels: [correct, incorrect], score_min: 0, score_max: 1}}
"""
    )
    cli = str(Path(sys.executable).parent / "annobridge")
    started = time.perf_counter()
    done = subprocess.run([cli, "sync", str(mapping), "--json"], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    summary = json.loads(done.stdout)
    if done.returncode != 0 or summary["counts"]["synced"] != len(span_ids):
        raise SystemExit(f"annobridge sync failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    return seconds


def run_client(
    server: PhoenixServer, spans_file: Path, name: str, sync: bool
) -> tuple[float, float]:
    """(wall-clock start of the call, seconds the call took)."""
    script = ROOT / "benchmarks" / "_phoenix_official_client.py"
    done = subprocess.run(
        [str(phoenix_python()), str(script), server.url, str(spans_file), name, str(sync).lower()],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PHOENIX_")},
    )
    if done.returncode != 0:
        raise SystemExit(f"official client failed: {done.stderr[-2000:]}")
    timing = json.loads(done.stdout.strip().splitlines()[-1])
    return float(timing["started"]), float(timing["seconds"])


def run_raw(server: PhoenixServer, span_ids: list[str], name: str) -> float:
    session = requests.Session()
    started = time.perf_counter()
    for i in range(0, len(span_ids), 1000):
        body = {
            "data": [
                {
                    "span_id": s,
                    "name": name,
                    "annotator_kind": "HUMAN",
                    "result": {"label": "correct", "score": 1.0, "explanation": f"row {i + j}"},
                    "identifier": "raw",
                }
                for j, s in enumerate(span_ids[i : i + 1000])
            ]
        }
        r = session.post(f"{server.url}/v1/span_annotations?sync=true", json=body, timeout=120)
        r.raise_for_status()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--traces", type=int, default=5000, help="2 spans per trace")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="annobridge-bench-") as tmp:
        # the runs lock and journal in the temporary folder, never the user's state folder
        os.environ["ANNOBRIDGE_STATE_DIR"] = str(Path(tmp) / "state")
        work = Path(tmp)
        server = PhoenixServer(work / "phoenix").start(timeout=180)
        try:
            print(f"Phoenix at {server.url}; seeding {2 * args.traces} spans ...", flush=True)
            t = time.perf_counter()
            seeded = server.seed(
                work / "spans.json", project=PROJECT, count=args.traces, seed=3, timeout=900
            )
            span_ids = [s["span_id"] for s in seeded] + [s["llm_span_id"] for s in seeded]
            print(f"seeded {len(span_ids)} spans in {time.perf_counter() - t:.0f} s", flush=True)
            spans_file = work / "span_ids.json"
            spans_file.write_text(json.dumps(span_ids))

            methods: dict[str, Callable[[str], tuple[int, float]]] = {}

            def confirmed(fn: Callable[[str], float]) -> Callable[[str], tuple[int, float]]:
                def measure(name: str) -> tuple[int, float]:
                    seconds = fn(name)
                    return count_landed(server, span_ids, name), seconds

                return measure

            def unconfirmed(name: str) -> tuple[int, float]:
                started, _ = run_client(server, spans_file, name, sync=False)
                return wait_landed(server, span_ids, name, started)

            methods["annobridge sync (xlsx, end to end)"] = confirmed(
                lambda n: run_annobridge(server, span_ids, n, work)
            )
            methods["official client, sync=True"] = confirmed(
                lambda n: run_client(server, spans_file, n, sync=True)[1]
            )
            methods["official client, sync=False (until landed)"] = unconfirmed
            methods["raw requests, sync=true, batches of 1000"] = confirmed(
                lambda n: run_raw(server, span_ids, n)
            )

            rates: dict[str, list[float]] = {m: [] for m in methods}
            landed: dict[str, list[int]] = {m: [] for m in methods}
            for r in range(args.rounds):
                for i, (method, measure) in enumerate(methods.items()):
                    n, seconds = measure(f"bench_r{r}_m{i}")
                    rates[method].append(n / seconds)
                    landed[method].append(n)
                    print(
                        f"round {r + 1}: {method}: {n} landed in {seconds:.2f} s "
                        f"= {n / seconds:,.0f}/s",
                        flush=True,
                    )
        finally:
            server.stop()
    base = statistics.median(rates["official client, sync=True"])
    print(f"\n{len(span_ids):,} spans, {args.rounds} rounds, medians (2 shared cores):\n")
    print("| method | landed | annotations/s | vs official sync=True |")
    print("|---|---|---|---|")
    for method in methods:
        med = statistics.median(rates[method])
        print(
            f"| {method} | {min(landed[method]):,}/{len(span_ids):,} | {med:,.0f} | "
            f"{med / base:.2f}x |"
        )
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "phoenix_throughput.json").write_text(
        json.dumps({"spans": len(span_ids), "rates": rates, "landed": landed}, indent=1)
    )


if __name__ == "__main__":
    main()
