"""Run an experiment for one model over several seeds and record the result table.

Each call trains one run per seed with ``torchlnn.training.train_and_test`` (so an
interrupted experiment resumes where it stopped, and finished seeds are not trained again),
then merges the model's row into ``<results_dir>/<experiment>.json`` and rewrites
``<results_dir>/<experiment>.md`` from it.
"""

from __future__ import annotations

import dataclasses
import datetime as _datetime
import json
import shlex
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from torchlnn.experiments.specs import EXPERIMENTS, ExperimentConfig, ExperimentSpec
from torchlnn.training import (
    RunResult,
    SequenceDataModule,
    build_sequence_model,
    classification_task,
    environment_info,
    regression_task,
    train_and_test,
)
from torchlnn.training.config import config_to_dict
from torchlnn.training.models import MODEL_NAMES
from torchlnn.training.run import is_main_process


def get_spec(name: str) -> ExperimentSpec:
    """Return the experiment named ``name``."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ValueError(
            f"Unknown experiment {name!r}; available: {', '.join(sorted(EXPERIMENTS))}."
        ) from None


@lru_cache(maxsize=4)
def _load_splits(dataset: str, loader_options: str):
    from torchlnn.data import load

    return load(dataset, **json.loads(loader_options))


def build_run(spec: ExperimentSpec, config: ExperimentConfig):
    """Return ``(LightningModule, DataModule)`` for one run of ``spec`` with ``config``."""
    datamodule = SequenceDataModule(
        splits=_load_splits(spec.dataset, config.loader_options),
        batch_size=config.batch_size,
        seed=config.seed,
        timespan_scale=config.timespan_scale,
        timespans_as_feature=config.timespans_as_feature,
        max_samples=config.max_samples,
        num_workers=config.num_workers,
    )
    output_size = config.output_size or datamodule.output_size
    model = build_sequence_model(
        config.model,
        datamodule.input_size,
        output_size,
        config.units,
        **json.loads(config.model_options),
    )
    optimisation = {
        "optimizer": config.optimizer,
        "lr": config.lr,
        "lr_decay": config.lr_decay,
        "weight_decay": config.weight_decay,
    }
    if datamodule.task == "classification":
        module = classification_task(model, **optimisation)
    else:
        module = regression_task(model, **optimisation)
    return module, datamodule


def run_experiment(
    name: str,
    model: str,
    seeds: Sequence[int],
    overrides: dict[str, Any] | None = None,
    results_dir: str | Path = "experiments/results",
    note: str | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Train ``model`` on experiment ``name`` once per seed and record its table row.

    Args:
        name: experiment name (``halfcheetah``, ``xor``, ``speed``).
        model: a name from ``torchlnn.training.MODEL_NAMES``.
        seeds: the seeds to run.
        overrides: config fields that replace the experiment's defaults (for example
            ``{"epochs": 5}``).
        results_dir: folder of ``<name>.json`` and ``<name>.md``.
        note: a remark shown in the model's table row (for example why epochs were reduced).
        command: the command line to show in the table (default: this process's).

    Returns the model's row as written to the JSON file.
    """
    spec = get_spec(name)
    if model not in MODEL_NAMES:
        raise ValueError(f"Unknown model {model!r}; expected one of {', '.join(MODEL_NAMES)}.")
    if not seeds:
        raise ValueError("seeds must name at least one seed.")

    results: list[RunResult] = []
    configs: list[ExperimentConfig] = []
    for seed in seeds:
        config = experiment_config(spec, model, seed, overrides)
        configs.append(config)
        results.append(train_and_test(config, lambda config=config: build_run(spec, config)))

    row = summarise(spec, configs, results, note, command)
    if is_main_process():
        write_row(spec, model, row, results_dir)
    return row


def experiment_config(
    spec: ExperimentSpec, model: str, seed: int, overrides: dict[str, Any] | None = None
) -> ExperimentConfig:
    """Return the config of one seed with ``overrides`` applied.

    Raises ValueError for an unknown field or a value that the config rejects.
    """
    config = spec.config_for(model, seed)
    for key in overrides or {}:
        if not hasattr(config, key):
            raise ValueError(f"Unknown config field {key!r} in overrides.")
    return dataclasses.replace(config, **(overrides or {}))  # runs the config's checks


def summarise(
    spec: ExperimentSpec,
    configs: Sequence[ExperimentConfig],
    results: Sequence[RunResult],
    note: str | None,
    command: str | None,
) -> dict[str, Any]:
    """Reduce the runs of one model to its table row (mean and population std over seeds)."""
    values = [r.test_metrics[spec.metric] * spec.metric_scale for r in results]
    seconds = [r.mean_epoch_seconds for r in results if r.mean_epoch_seconds is not None]
    cpu_seconds = [
        r.mean_epoch_cpu_seconds for r in results if r.mean_epoch_cpu_seconds is not None
    ]
    config = configs[0]
    protocol_config = spec.config_for(config.model, config.seed)
    full_protocol = (
        config.epochs == protocol_config.epochs
        and config.max_samples is None
        and config.limit_train_batches is None
        and config.limit_val_batches is None
        and config.limit_test_batches is None
        and all(r.epochs_completed == config.epochs for r in results)
    )
    settings = config_to_dict(config)
    for key in ("seed", "run_dir", "runs_root", "resume", "progress_bar", "threads"):
        settings.pop(key, None)
    # Flushing subnormal floats is shown with each command's run, so that rows trained with
    # and without it can still be merged.
    flush_denormal = settings.pop("flush_denormal", False)
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "values": values,
        "seeds": [r.seed for r in results],
        "parameters": results[0].parameters,
        "seconds_per_epoch": float(np.mean(seconds)) if seconds else None,
        "cpu_seconds_per_epoch": float(np.mean(cpu_seconds)) if cpu_seconds else None,
        "epochs": config.epochs,
        "epochs_completed": [r.epochs_completed for r in results],
        "best_epochs": [r.best_epoch for r in results],
        "full_protocol": full_protocol,
        "note": note,
        "command": command or default_command(),
        "config": settings,
        "flush_denormal": flush_denormal,
        "run_dirs": [r.run_dir for r in results],
        "training_commits": training_commits([r.run_dir for r in results]),
        "environment": environment_info(),
        "finished": _datetime.datetime.now().isoformat(timespec="seconds"),
    }


def training_commits(run_dirs: Sequence[str | Path]) -> list[str]:
    """Return the torchlnn commits that the runs' attempts started from, in order.

    Each run folder's ``run.json`` records the environment when the run and each resumed
    attempt started. The row is written when training ends, so its own environment shows
    the commit checked out then. Run folders no longer on disk are skipped.
    """
    commits: list[str] = []
    for run_dir in run_dirs:
        run_file = Path(run_dir) / "run.json"
        if not run_file.exists():
            continue
        record = json.loads(run_file.read_text())
        environments = [record["environment"]]
        environments += [a["environment"] for a in record["attempts"] if a.get("environment")]
        for environment in environments:
            commit = environment.get("torchlnn_commit")
            if commit and commit not in commits:
                commits.append(commit)
    return commits


def merge_rows(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Combine rows of one model that ran the same config with different seeds.

    Each row comes from its own ``torchlnn experiment`` call, for example when seeds ran at
    different times or on different machines. The merged row contains every seed's value, their
    mean and population standard deviation, and the seconds per epoch averaged over seeds.
    Its ``parts`` list the command, environment and finish time of each call, so that the
    table shows every command that produced the row.

    Raises ValueError when the rows differ in anything but their seeds, or share a seed.
    """
    if not rows:
        raise ValueError("merge_rows needs at least one row.")
    first = rows[0]
    for index, row in enumerate(rows[1:], start=1):
        for key in ("config", "epochs", "parameters", "note"):
            if row.get(key) != first.get(key):
                raise ValueError(
                    f"Row {index} differs from row 0 in {key!r} ({row.get(key)!r} against "
                    f"{first.get(key)!r}); merge only runs of the same model and settings."
                )
    seeds = [seed for row in rows for seed in row["seeds"]]
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise ValueError(
            f"Seeds {repeated} appear in more than one row; merge rows of distinct seeds."
        )

    def per_seed_mean(key: str) -> float | None:
        # Each row's value is a mean over its seeds, so weight it by their number.
        pairs = [(row[key], len(row["seeds"])) for row in rows if row.get(key) is not None]
        if not pairs:
            return None
        return sum(value * count for value, count in pairs) / sum(count for _, count in pairs)

    values = [value for row in rows for value in row["values"]]
    parts = [part for row in rows for part in row.get("parts", [_part_of(row)])]
    return {
        **first,
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "values": values,
        "seeds": seeds,
        "seconds_per_epoch": per_seed_mean("seconds_per_epoch"),
        "cpu_seconds_per_epoch": per_seed_mean("cpu_seconds_per_epoch"),
        "epochs_completed": [n for row in rows for n in row["epochs_completed"]],
        "best_epochs": [n for row in rows for n in row["best_epochs"]],
        "full_protocol": all(row["full_protocol"] for row in rows),
        "run_dirs": [d for row in rows for d in row.get("run_dirs", [])],
        "parts": parts,
        "training_commits": list(dict.fromkeys(c for p in parts for c in p["commits"] if c)),
        "command": parts[0]["command"],
        "environment": parts[-1]["environment"],
        "finished": parts[-1]["finished"],
    }


def _part_of(row: dict[str, Any]) -> dict[str, Any]:
    """Return what the Runs list shows for a row made by one command."""
    environment = row.get("environment", {})
    return {
        "command": row["command"],
        "seeds": row["seeds"],
        "best_epochs": row["best_epochs"],
        "commits": row.get("training_commits")
        or training_commits(row.get("run_dirs", []))
        or [environment.get("torchlnn_commit")],
        "environment": environment,
        "flush_denormal": row.get("flush_denormal", False),
        "finished": row["finished"],
    }


def default_command() -> str:
    """This process's command line, written as the equivalent ``torchlnn experiment`` call."""
    arguments = sys.argv[1:]
    if arguments[:1] != ["experiment"]:
        arguments = ["experiment", *arguments]
    return " ".join(shlex.quote(part) for part in ["torchlnn", *arguments])


def spec_fields(spec: ExperimentSpec) -> dict[str, Any]:
    """Return the fields of a result record that describe the experiment, not a run."""
    return {
        "experiment": spec.name,
        "title": spec.title,
        "metric": spec.metric,
        "metric_label": spec.metric_label,
        "protocol": spec.protocol,
        "differences": spec.differences,
        "paper": {k: vars(v) for k, v in spec.paper.items()},
        "references": {k: vars(v) for k, v in spec.references.items()},
    }


def write_row(
    spec: ExperimentSpec, model: str, row: dict[str, Any], results_dir: str | Path
) -> Path:
    """Merge ``row`` into ``<results_dir>/<name>.json`` and rewrite the Markdown table."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{spec.name}.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    record.update(spec_fields(spec))
    models = record.setdefault("models", {})
    models[model] = row
    record["models"] = {name: models[name] for name in MODEL_NAMES if name in models}
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(record, indent=2) + "\n")
    temporary.replace(path)
    (results_dir / f"{spec.name}.md").write_text(render_table(record))
    return path


def _format(mean: float, std: float | None, digits: int) -> str:
    if std is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _load_text(environment: dict[str, Any]) -> str:
    load = environment.get("load_average")
    if not load:
        return ""
    return f"load average {load[0]:.1f} on {environment.get('cpu_count')} CPUs at the end; "


def _flush_text(part: dict[str, Any]) -> str:
    return "subnormal floats flushed to zero; " if part.get("flush_denormal") else ""


def _commit_text(commit: str | None) -> str:
    """Return a short commit for the table, saying when the tree had uncommitted changes."""
    if commit is None:
        return "unknown"
    text = f"`{commit[:12]}`"
    return text + " with uncommitted changes" if commit.endswith("-dirty") else text


def render_table(record: dict[str, Any]) -> str:
    """Render one experiment's JSON record as a Markdown section."""
    digits = 2 if "accuracy" in record["metric"] else 3
    lines = [f"## {record['title']}", "", record.get("protocol", ""), ""]
    lines += [
        f"| model | ours: {record['metric_label']} | paper | seeds | epochs | "
        "parameters | s / epoch (wall, CPU) | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    paper = record.get("paper", {})
    for model, row in record.get("models", {}).items():
        reference = paper.get(model)
        paper_text = "—"
        if reference is not None:
            paper_text = _format(reference["mean"], reference["std"], digits)
        seconds = "—" if row["seconds_per_epoch"] is None else f"{row['seconds_per_epoch']:.2f}"
        if row.get("cpu_seconds_per_epoch") is not None:
            seconds += f", {row['cpu_seconds_per_epoch']:.2f}"
        spread = row["std"] if len(row["seeds"]) > 1 else None
        epochs = str(row["epochs"])
        if not row["full_protocol"]:
            epochs += " (reduced)"
        lines.append(
            f"| {model} | {_format(row['mean'], spread, digits)} | {paper_text} | "
            f"{len(row['seeds'])} | {epochs} | {row['parameters']:,} | {seconds} | "
            f"{row.get('note') or ''} |"
        )
    for name, reference in record.get("references", {}).items():
        lines.append(f"| {name} | {reference['mean']:.3f} | | | | | | {reference['source']} |")
    lines.append("")

    # Only the speed experiment trains LTC and CfC with the same units, batch and data.
    models = record.get("models", {}) if record.get("experiment") == "speed" else {}
    for key, kind in (("seconds_per_epoch", "Wall-clock"), ("cpu_seconds_per_epoch", "CPU")):
        ltc, cfc = models.get("ltc", {}).get(key), models.get("cfc", {}).get(key)
        if ltc and cfc:
            lines += [f"{kind} seconds per training epoch, LTC (6 unfolds) / CfC: {ltc / cfc:.1f}."]
    if lines[-1] != "":
        lines.append("")

    if record.get("differences"):
        lines += ["Differences from the paper's protocol:", ""]
        lines += [f"- {text}" for text in record["differences"]]
        lines.append("")

    lines += ["Runs:", ""]
    for model, row in record.get("models", {}).items():
        for part in row.get("parts", [_part_of(row)]):
            environment = part["environment"]
            commit_text = ", ".join(_commit_text(commit) for commit in part["commits"])
            lines.append(
                f"- {model}: `{part['command']}`; seeds {part['seeds']}; best epochs "
                f"{part['best_epochs']}; torchlnn {environment.get('torchlnn_version')}, "
                f"trained at commit {commit_text}; {environment.get('cpu')}, torch threads: "
                f"{environment.get('torch_threads')}, torch {environment.get('torch_version')}; "
                f"{_flush_text(part)}{_load_text(environment)}finished {part['finished']}."
            )
    sources = {v["source"] for v in paper.values()}
    if sources:
        lines += ["", "Paper numbers: " + "; ".join(sorted(sources)) + "."]
    lines.append("")
    return "\n".join(lines)
