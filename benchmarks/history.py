"""Measure the same few cases at several commits, to see what each change bought.

Usage::

    python benchmarks/history.py 75bf1e3 70d7317 HEAD --threads 1

Each commit's ``src/`` is exported with ``git archive`` into a temporary folder and measured
in a fresh Python process, so the versions never mix. The cases: forward and forward +
backward of the CfC with 64 units, the CfC and the LTC on AutoNCP(64, 8) (batch 64, 100
steps, 32 features), and one control step of the 19-neuron NCP at batch 1. Times are the
minimum over rounds, which on a shared machine is the least disturbed run. The reference
rows come from the oldest commit; on later commits ``fast_path = False`` gives the same
reference loop.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MEASURE = r"""
import json, sys, time, torch
import torchlnn
from torchlnn.wirings import AutoNCP, NCP
torch.set_num_threads(int(sys.argv[1]))
rounds = int(sys.argv[2])
torch.manual_seed(0)
x = torch.randn(64, 100, 32)

def best(call, count):
    call()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)

def sequence(model):
    def forward():
        with torch.no_grad():
            model(x)
    def training():
        model.zero_grad(set_to_none=True)
        model(x)[0].sum().backward()
    return best(forward, rounds) * 1e3, best(training, rounds) * 1e3

def step(cell):
    sample, state = torch.randn(1, 32), torch.zeros(1, 19)
    def call():
        with torch.no_grad():
            for _ in range(200):
                cell(sample, state)
    return best(call, rounds) / 200 * 1e6

def ncp19():
    return NCP(12, 6, 1, 6, 4, 6, 6, seed=22222)

results = {
    "cfc_64": sequence(torchlnn.CfC(32, 64)),
    "cfc_autoncp_64_8": sequence(torchlnn.CfC(32, AutoNCP(64, 8, seed=1))),
    "ltc_autoncp_64_8": sequence(torchlnn.LTC(32, AutoNCP(64, 8, seed=1))),
    "control_step_ltc_ncp19": step(torchlnn.LTCCell(ncp19(), 32)),
    "control_step_cfc_ncp19": step(torchlnn.WiredCfCCell(32, ncp19())),
}
print(json.dumps(results))
"""


def export(commit: str, folder: Path) -> Path:
    """Extract ``src/`` of ``commit`` into ``folder`` and return the package root."""
    archive = subprocess.run(
        ["git", "archive", commit, "src"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commits", nargs="+", help="commits to measure, oldest first")
    parser.add_argument("--threads", type=int, default=1, help="intra-op CPU threads")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per case")
    args = parser.parse_args(argv)

    table = {}
    for commit in args.commits:
        with tempfile.TemporaryDirectory() as folder:
            source = export(commit, Path(folder))
            output = subprocess.run(
                [sys.executable, "-c", MEASURE, str(args.threads), str(args.rounds)],
                env={"PYTHONPATH": str(source), "PATH": "/usr/bin:/bin"},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        table[commit] = json.loads(output.strip().splitlines()[-1])
        print(commit, table[commit], flush=True)
    print(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
