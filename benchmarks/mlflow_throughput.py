"""Throughput: annobridge vs a loop of ``mlflow.log_feedback``, against one local MLflow.

Starts ``mlflow server`` with default settings (SQLite, 4 workers) from the MLflow
virtualenv, seeds ``--labels`` traces through the SDK, then alternates, ``--repeat`` times:

- the baseline: benchmarks/mlflow_feedback_loop.py (MLflow's python), one ``log_feedback``
  per label, timed around the loop only (imports excluded);
- annobridge: ``python -m bridge sync <mapping> --json`` on a fresh workbook with the same
  labels (one pass/fail feedback per trace, with rationale, annotator and row), timed around
  the whole process: start-up, reading the sheet, validation, lookups, writes, write-back.

Each run writes a new assessment name, and every run is checked by reading back how many
traces hold it. Prints a table of medians and writes benchmarks/results/mlflow_throughput.json.

    make bench            # or: .venv/bin/python benchmarks/mlflow_throughput.py --labels 2000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import openpyxl  # noqa: E402

from tests.mlflow_server import MlflowServer, mlflow_python  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "mlflow_throughput.json"
LABELS = ("correct", "incorrect")


def labels_for(traces: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [
        {
            "trace_id": t["trace_id"],
            "name": name,
            "label": LABELS[i % 3 == 0],
            "value": i % 3 != 0,
            "annotator": f"sme-{i % 5}@example.com",
            "rationale": f"checked against the reference answer ({i})",
            "row": i + 2,
        }
        for i, t in enumerate(traces)
    ]


def write_workbook(path: Path, labels: list[dict[str, Any]]) -> None:
    book = openpyxl.Workbook()
    ws = book.active
    assert ws is not None
    ws.title = "Labels"
    ws.append(["trace_id", "label", "explanation", "annotator"])
    for item in labels:
        ws.append([item["trace_id"], item["label"], item["rationale"], item["annotator"]])
    book.save(path)


def write_mapping(path: Path, server: MlflowServer, name: str, experiment: str) -> None:
    path.write_text(
        f"""source:
  type: excel
  path: {path.stem}.xlsx
  worksheet: Labels
target:
  type: mlflow
  url: {server.url}
  experiment: {experiment}
  values: {{{name}: pass_fail}}
annotations:
  - name: {name}
    id_column: trace_id
    label_column: label
    explanation_column: explanation
    annotator_column: annotator
    rules:
      labels: [correct, incorrect]
      require: label
"""
    )


def landed(server: MlflowServer, experiment_id: str, name: str) -> int:
    """How many traces hold a valid feedback of this name (read back from the server)."""
    count, token = 0, ""
    while True:
        body: dict[str, Any] = {
            "locations": [
                {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}}
            ],
            "filter": f"feedback.{name} IS NOT NULL",
            "max_results": 500,
        }
        if token:
            body["page_token"] = token
        page = server.call("POST", "/traces/search", body)
        count += len(page.get("traces", []))
        token = page.get("next_page_token") or ""
        if not token:
            return count


def run_loop(server: MlflowServer, labels: list[dict[str, Any]], work: Path) -> float:
    spec = work / f"{labels[0]['name']}.json"
    spec.write_text(json.dumps(labels))
    script = ROOT / "benchmarks" / "mlflow_feedback_loop.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [str(mlflow_python()), str(script), "--url", server.url, "--labels", str(spec)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"log_feedback loop failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["seconds"])


def run_annobridge(
    server: MlflowServer, labels: list[dict[str, Any]], work: Path, experiment: str
) -> tuple[float, dict[str, Any]]:
    name = labels[0]["name"]
    mapping = work / f"{name}.yaml"
    write_workbook(work / f"{name}.xlsx", labels)
    write_mapping(mapping, server, name, experiment)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "sync", str(mapping), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    seconds = time.perf_counter() - started
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if done.returncode != 0 or summary["counts"]["synced"] != len(labels):
        raise SystemExit(f"annobridge run failed ({done.returncode}): {done.stdout[-2000:]}")
    return seconds, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--labels", type=int, default=2000, help="labels (= traces) per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each client")
    parser.add_argument("--seed-threads", type=int, default=4)
    args = parser.parse_args()
    experiment = "annobridge-bench"
    with tempfile.TemporaryDirectory(prefix="annobridge-mlflow-bench-") as tmp:
        # the runs lock and journal in the temporary folder, never the user's state folder
        os.environ["ANNOBRIDGE_STATE_DIR"] = str(Path(tmp) / "state")
        work = Path(tmp)
        server = MlflowServer(work / "server").start()  # default settings: 4 workers, jobs on
        try:
            started = time.perf_counter()
            traces = server.seed(
                work / "traces.json",
                experiment=experiment,
                count=args.labels,
                request_prefix="",
                threads=args.seed_threads,
                timeout=3600,
            )
            print(f"seeded {len(traces)} traces in {time.perf_counter() - started:.0f}s")
            experiment_id = traces[0]["experiment_id"]
            loop_s: list[float] = []
            ours_s: list[float] = []
            ours_inner: list[float] = []
            loads: list[float] = []
            for r in range(args.repeat):

                def loop(r: int = r) -> None:
                    labels = labels_for(traces, f"bench_loop_{r}")
                    loop_s.append(run_loop(server, labels, work))
                    assert landed(server, experiment_id, f"bench_loop_{r}") == len(traces)

                def ours(r: int = r) -> None:
                    labels = labels_for(traces, f"bench_annobridge_{r}")
                    seconds, summary = run_annobridge(server, labels, work, experiment)
                    ours_s.append(seconds)
                    ours_inner.append(float(summary["seconds"]))
                    assert landed(server, experiment_id, f"bench_annobridge_{r}") == len(traces)

                for step in (loop, ours) if r % 2 == 0 else (ours, loop):  # alternate the order
                    step()
                loads.append(os.getloadavg()[0])
                print(
                    f"run {r + 1}/{args.repeat}: log_feedback loop {loop_s[-1]:.1f}s, "
                    f"annobridge {ours_s[-1]:.1f}s (sync itself {ours_inner[-1]:.1f}s); "
                    f"load average {loads[-1]:.1f}",
                    flush=True,
                )
        finally:
            server.stop()
    n = args.labels
    loop_m, ours_m, inner_m = (statistics.median(x) for x in (loop_s, ours_s, ours_inner))
    rows = [
        ("mlflow.log_feedback loop (baseline)", loop_m, 1.0),
        ("annobridge sync, whole process", ours_m, loop_m / ours_m),
        ("annobridge sync, pipeline only", inner_m, loop_m / inner_m),
    ]
    print(
        f"\n{n} labels, MLflow 3.17.2 server with default settings, medians of {args.repeat} "
        f"(1-min load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cpus)"
    )
    print("| client | seconds | labels/s | vs loop |\n|---|---:|---:|---:|")
    for label, seconds, ratio in rows:
        print(f"| {label} | {seconds:.1f} | {n / seconds:.0f} | {ratio:.1f}x |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "labels": n,
                "repeat": args.repeat,
                "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
                "python": platform.python_version(),
                "log_feedback_loop_s": loop_s,
                "annobridge_process_s": ours_s,
                "annobridge_pipeline_s": ours_inner,
                "ratio_median": loop_m / ours_m,
                "load_average_1min": loads,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
