"""Summarise lane-keeping runs made with different seeds: mean and spread per policy.

One lane-keeping run trains every policy once, so a single departure more or less moves a
table cell by almost 1 per km. This script reads the records (``lane_keeping.json``) of
several finished runs with the same settings apart from ``--seed`` and writes, per policy, the
mean and the population standard deviation over the runs of

* the offline test RMSE of the curvature (1/km),
* departures per km, with clean frames and at each pixel-noise level,
* the mean absolute offset from the lane centre (m), a continuous measure of the same drives
  that a single departure does not dominate,
* the attention SSIM.

    python experiments/lane_keeping_seeds.py RUN_DIR [RUN_DIR ...] --name NAME

writes ``experiments/results/lane-keeping/NAME.md`` and ``NAME.json``. A run folder may also be
a copy that holds only ``lane_keeping.json`` (as under experiments/results/lane-keeping/).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "lane-keeping"

# Config fields that may differ between the runs: the seed, the policies trained (only those
# trained in every run are compared), and where and how a run executed. Every other field
# must agree.
MAY_DIFFER = ("seed", "models", "runs_root", "progress", "threads", "devices", "num_nodes")


def load_record(folder: Path) -> dict:
    """Return the record of the finished run in ``folder``."""
    path = folder / "lane_keeping.json"
    if not path.is_file():
        raise SystemExit(
            f"lane_keeping.json not found in {folder}; pass the folder of a lane-keeping run."
        )
    record = json.loads(path.read_text())
    missing = [stage for stage in ("train", "evaluate") if stage not in record["stages"]]
    if missing:
        raise SystemExit(
            f"The run in {folder} has not finished {', '.join(missing)}; run "
            f"`torchlnn lane-keeping --run-dir {folder}` to finish it first."
        )

    # A setting added after a run was recorded had, in that run, the value its field names as
    # ``hash_default`` (the conv head's initialisation, for one).
    from torchlnn.driving.lane_keeping import LaneKeepingConfig

    for spec in dataclasses.fields(LaneKeepingConfig):
        if "hash_default" in spec.metadata:
            record["config"].setdefault(spec.name, spec.metadata["hash_default"])
    return record


def check_same_settings(records: list[dict], folders: list[Path]) -> None:
    """Exit with the setting that differs when the runs are not comparable."""
    seen: dict[int, Path] = {}
    for record, folder in zip(records, folders):
        seed = record["config"]["seed"]
        if seed in seen:
            raise SystemExit(
                f"{seen[seed]} and {folder} both have seed {seed}, so they repeat one run. "
                "Pass runs made with different `torchlnn lane-keeping --seed N` and otherwise "
                "the same options."
            )
        seen[seed] = folder
    first = records[0]["config"]
    for record, folder in zip(records[1:], folders[1:]):
        config = record["config"]
        for key in sorted(set(first) | set(config)):
            if key not in MAY_DIFFER and config.get(key) != first.get(key):
                raise SystemExit(
                    f"{key} differs: {first.get(key)!r} in {folders[0]} and "
                    f"{config.get(key)!r} in {folder}. Summarise runs that differ only in "
                    "--seed (and in --models, --threads or --runs-root)."
                )


def _spread(values: list[float]) -> dict:
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "std": float(array.std()), "values": array.tolist()}


def summarise(records: list[dict]) -> dict:
    """Return per policy the mean and spread of each measure over the runs."""
    config = records[0]["config"]
    conditions = ["clean"] + [f"noise {v:g}" for v in config["noise_variances"]]
    policies = [name for name in records[0]["stages"]["train"]]
    summary = {}
    left_out = sorted(
        {name for r in records for name in r["stages"]["train"]}
        - {name for name in policies if all(name in r["stages"]["train"] for r in records)}
    )
    for policy in policies:
        if policy in left_out:
            continue
        row: dict = {}
        rmse = [1000 * math.sqrt(r["stages"]["train"][policy]["test_mse"]) for r in records]
        row["offline_rmse_per_km"] = _spread(rmse)
        for condition in conditions:
            drives = [
                r["stages"]["evaluate"][f"{policy} | {condition}"]["summary"] for r in records
            ]
            row[f"departures_per_km | {condition}"] = _spread(
                [d["departures_per_km"] for d in drives]
            )
            row[f"mean_abs_offset_m | {condition}"] = _spread(
                [d["mean_abs_offset_m"] for d in drives]
            )
        ssim = [
            r["stages"].get("analyse", {}).get("models", {}).get(policy, {}).get("attention_ssim")
            for r in records
        ]
        if all(value is not None for value in ssim):
            row["attention_ssim"] = _spread(ssim)
        summary[policy] = row
    return {"conditions": conditions, "policies": summary, "left_out": left_out}


def _cell(entry: dict | None, digits: int) -> str:
    if entry is None:
        return "n/a"
    return f"{entry['mean']:.{digits}f} ± {entry['std']:.{digits}f}"


def markdown(summary: dict, records: list[dict], command: str) -> str:
    """Return the summary as a Markdown table with the runs' settings."""
    conditions = summary["conditions"]
    seeds = [r["config"]["seed"] for r in records]
    config = records[0]["config"]
    lines = [
        f"Lane keeping over {len(records)} seeds ({', '.join(map(str, seeds))}), "
        f"{config['preset']} preset, {config['env']}; mean ± standard deviation over the seeds.",
        "",
        "| policy | offline RMSE (1/km) | "
        + " | ".join(f"departures/km, {c}" for c in conditions)
        + f" | mean abs offset (m), {conditions[-1]} | attention SSIM |",
        "| --- " * (4 + len(conditions)) + "|",
    ]
    for policy, row in summary["policies"].items():
        cells = [policy, _cell(row["offline_rmse_per_km"], 2)]
        cells += [_cell(row[f"departures_per_km | {c}"], 1) for c in conditions]
        cells.append(_cell(row[f"mean_abs_offset_m | {conditions[-1]}"], 3))
        cells.append(_cell(row.get("attention_ssim"), 3))
        lines.append("| " + " | ".join(cells) + " |")
    if summary["left_out"]:
        lines += ["", f"Left out, not trained in every run: {', '.join(summary['left_out'])}."]
    lines += [
        "",
        "Per-seed values are in the JSON file beside this one. Each run: "
        f"{config['episodes']} expert episodes of {config['episode_steps']} frames, at most "
        f"{config['epochs']} epochs, conv head initialised as {config['conv_init']!r}, "
        f"{len(config['eval_seeds'])} road seeds of {config['eval_distance']:g} m per "
        f"condition. torchlnn "
        f"{records[0]['torchlnn_version']}, torch {records[0]['torch_version']}.",
        "",
        f"Command: `{command}`",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path, help="folders of finished lane-keeping runs")
    parser.add_argument("--name", required=True, help="writes NAME.md and NAME.json")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS,
        help="folder of the result files (default: experiments/results/lane-keeping)",
    )
    args = parser.parse_args(argv)

    records = [load_record(folder) for folder in args.runs]
    check_same_settings(records, args.runs)
    summary = summarise(records)
    command = "python experiments/lane_keeping_seeds.py " + " ".join(sys.argv[1:])
    text = markdown(summary, records, command)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{args.name}.md").write_text(text)
    summary["seeds"] = [r["config"]["seed"] for r in records]
    summary["command"] = command
    (args.results_dir / f"{args.name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
