"""Speed and memory of torchlnn against ncps 1.0.1 and torch.nn, in the same process.

Usage::

    python benchmarks/run.py            # every case (about 20 minutes on 2 CPU threads)
    python benchmarks/run.py --quick    # a subset, about a minute
    python benchmarks/run.py --resume   # continue an interrupted run

Writes ``benchmarks/results/latest.json`` (one record per case and implementation) and
``benchmarks/results/latest.md`` (the tables for docs/benchmarks.md, with the machine,
versions and command); ``--update-docs`` also replaces the results section of
docs/benchmarks.md. The cases and the measurement method are described in
``benchmarks/cases.py``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

import torchlnn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cases as bench  # noqa: E402  (the sibling module, found through the path above)
import report  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


@dataclass
class Record:
    """One case measured with one implementation. Times in ms (steps in µs), memory in MB."""

    case: str
    group: str
    implementation: str
    device: str
    threads: int
    forward_ms: float | None = None
    forward_backward_ms: float | None = None
    peak_memory_mb: float | None = None
    kept_for_backward_mb: float | None = None
    step_us: float | None = None
    graphs_compiled: list[int] | None = None
    params: dict[str, Any] | None = None
    skipped: str | None = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="run a subset (about a minute)")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[2],
        help="intra-op CPU threads; several values run every case once per value (default 2)",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="timed rounds per case (default 5, quick 2)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds of timed rounds allowed per implementation and case (default 20, quick 1)",
    )
    parser.add_argument(
        "--cases", nargs="*", help="run only cases whose name contains one of these"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every model and input")
    parser.add_argument(
        "--output", type=Path, default=RESULTS / "latest.json", help="JSON results file"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the records of an interrupted run with the same settings and run the rest",
    )
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help="rewrite the results section of docs/benchmarks.md",
    )
    parser.add_argument("--no-gpu", action="store_true", help="skip the GPU section")
    # Internal: measure one case in this process and print its records as JSON. The main run
    # starts one such process per case, so that no case inherits the memory fragmentation of
    # an earlier one (ncps's LTC allocates gigabytes in megabyte pieces, and glibc keeps
    # them: two of them in one process ran a 24 GB machine out of memory).
    parser.add_argument("--worker", metavar="CASE", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def machine_description(threads: list[int]) -> dict[str, Any]:
    """Return the machine, the versions and the load, for the report."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        ncps_version = importlib.metadata.version("ncps")
    except importlib.metadata.PackageNotFoundError:
        ncps_version = "not installed"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except OSError:
        commit = ""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchlnn": torchlnn.__version__,
        "ncps": ncps_version,
        "commit": commit,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_start": list(load) if load else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def measure_case(
    case: bench.Case, device: torch.device, threads: int, rounds: int, budget: float, seed: int
) -> list[Record]:
    """Measure one case with every implementation; returns one record per implementation."""
    records: dict[str, Record] = {}
    models: dict[str, torch.nn.Module] = {}
    extra = [name for name in case.builders if name not in bench.IMPLEMENTATIONS]
    for name in [*bench.IMPLEMENTATIONS, *extra]:
        record = Record(case.name, case.group, name, device.type, threads, params=case.params)
        records[name] = record
        build = case.builders.get(name)
        if name == bench.TORCHLNN_C and (build is None or device.type != "cpu"):
            record.skipped = "no C compiler on PATH" if build is None else "runs on the CPU only"
            continue
        if build is None:
            record.skipped = "not available" if name == bench.NCPS else "no equivalent"
            continue
        torch.manual_seed(seed)
        model = build()
        models[name] = model.to(device) if isinstance(model, torch.nn.Module) else model

    torch.manual_seed(seed)
    x = torch.randn(case.batch, case.steps, bench.FEATURES, device=device)
    if case.kind == "step":
        repeats = 200
        calls = {name: bench.step_call(model, x[:, 0], repeats) for name, model in models.items()}
        for name, seconds in time_all(calls, rounds, device, budget).items():
            records[name].step_us = seconds / repeats * 1e6
    elif case.kind == "compile":
        for name, model in models.items():
            records[name].graphs_compiled = bench.graphs_compiled(
                model, case.params["lengths"], case.batch
            )
    else:
        forward = {name: bench.forward_call(model, x) for name, model in models.items()}
        for name, seconds in time_all(forward, rounds, device, budget).items():
            records[name].forward_ms = seconds * 1e3
        if case.kind == "inference":
            for name, call in forward.items():
                records[name].peak_memory_mb = bench.peak_memory_mb(call, device)
        else:
            trained = {n: m for n, m in models.items() if n not in case.no_training}
            for name, reason in case.no_training.items():
                records[name].skipped = f"forward only: {reason}"
            training = {name: bench.training_call(model, x) for name, model in trained.items()}
            for name, seconds in time_all(training, rounds, device, budget).items():
                records[name].forward_backward_ms = seconds * 1e3
            for name, model in trained.items():
                records[name].kept_for_backward_mb = bench.kept_for_backward_mb(model, x)
                records[name].peak_memory_mb = bench.peak_memory_mb(training[name], device)
    return list(records.values())


def time_all(calls, rounds, device, budget):
    return bench.time_rounds(calls, rounds, device, budget)


def load_previous(path: Path, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the records of an earlier run with the same settings, to resume it."""
    partial = path.with_suffix(".tmp")
    if not partial.exists():
        return []
    saved = json.loads(partial.read_text())
    if saved.get("settings") != settings:
        print(f"Not resuming: {partial} was written with other settings.")
        return []
    return saved["records"]


def save_partial(path: Path, settings: dict[str, Any], records: list[dict[str, Any]]) -> None:
    partial = path.with_suffix(".tmp")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text(json.dumps({"settings": settings, "records": records}, indent=1))


def progress(items, description: str):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with the dev extra; without it, print each case
        return items
    return tqdm(items, desc=description, unit="case")


def run_worker(args: argparse.Namespace, rounds: int, budget: float) -> int:
    """Measure the single case ``args.worker`` and print its records as one JSON line."""
    (threads,) = args.threads
    torch.set_num_threads(threads)
    case = next(c for c in bench.all_cases(args.quick) if c.name == args.worker)
    device = torch.device(args.device)
    records = measure_case(case, device, threads, rounds, budget, args.seed)
    print(json.dumps([asdict(r) for r in records]))
    return 0


def measure_in_subprocess(
    case: bench.Case, device: str, threads: int, args: argparse.Namespace, rounds: int, budget
) -> list[dict[str, Any]]:
    """Run one case in a fresh Python process; on failure, return skipped records."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        case.name,
        "--device",
        device,
        "--threads",
        str(threads),
        "--rounds",
        str(rounds),
        "--budget",
        str(budget),
        "--seed",
        str(args.seed),
    ]
    if args.quick:
        command.append("--quick")
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode == 0:
        return json.loads(finished.stdout.strip().splitlines()[-1])
    reason = f"the measuring process failed with exit code {finished.returncode}"
    if finished.returncode in (-9, 137):
        reason += " (killed, most likely out of memory)"
    print(f"{case.name}: {reason}\n{finished.stderr[-2000:]}", file=sys.stderr)
    return [
        asdict(
            Record(case.name, case.group, name, device, threads, params=case.params, skipped=reason)
        )
        for name in bench.IMPLEMENTATIONS
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    budget = args.budget or (1.0 if args.quick else 20.0)
    if args.worker:
        return run_worker(args, rounds, budget)
    settings = {
        "quick": args.quick,
        "threads": args.threads,
        "rounds": rounds,
        "budget": budget,
        "seed": args.seed,
        "cases": args.cases,
    }
    machine = machine_description(args.threads)
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv)

    cases = bench.all_cases(args.quick)
    if args.cases:
        cases = [c for c in cases if any(key in c.name for key in args.cases)]
    done = load_previous(args.output, settings) if args.resume else []
    finished = {(r["case"], r["device"], r["threads"]) for r in done}
    records = list(done)

    devices = ["cpu"]
    gpu_note = None
    if args.no_gpu:
        gpu_note = "GPU section skipped: --no-gpu was given."
    elif torch.cuda.is_available():
        devices.append("cuda")
    else:
        gpu_note = "GPU section skipped: no CUDA device (torch.cuda.is_available() is False)."
    if gpu_note:
        print(gpu_note)

    for threads in args.threads:
        for device in devices:
            selected = [c for c in cases if device == "cpu" or c.group == "table"]
            label = f"{device}, {threads} thread{'s' if threads > 1 else ''}"
            for case in progress(selected, label):
                if (case.name, device, threads) in finished:
                    continue
                if args.quick:  # small cases: one process is enough and starts faster
                    torch.set_num_threads(threads)
                    measured = measure_case(
                        case, torch.device(device), threads, rounds, budget, args.seed
                    )
                    records.extend(asdict(r) for r in measured)
                else:
                    records.extend(
                        measure_in_subprocess(case, device, threads, args, rounds, budget)
                    )
                save_partial(args.output, settings, records)

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    machine["load_average_end"] = list(load) if load else None
    result = {
        "machine": machine,
        "settings": settings,
        "command": command,
        "gpu": gpu_note or f"GPU section ran on {machine['cuda']}.",
        "records": records,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    args.output.with_suffix(".tmp").unlink(missing_ok=True)
    markdown = report.markdown(result)
    args.output.with_suffix(".md").write_text(markdown)
    print(markdown)
    if args.update_docs:
        report.update_docs(DOCS, markdown)
        print(f"Updated {DOCS}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
