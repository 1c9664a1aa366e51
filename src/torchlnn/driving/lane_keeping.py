"""The lane-keeping system end to end: collect, train, drive in closed loop, inspect, report.

``run_lane_keeping(config)`` (the ``torchlnn lane-keeping`` command) does five stages in one
run folder ``<runs_root>/lane-keeping/<timestamp>/``:

1. **collect**: expert episodes, half of them starting off the lane centre (recovery data),
   with steering noise so that every episode shows corrections. Stored under
   ``<runs_root>/lane-keeping/data/<env>-<hash>/`` and shared by every run with the same
   collection settings.
2. **train**: each policy of ``config.models`` (see ``torchlnn.driving.policies``) on windows
   of 16 frames, with the same data, budget and seed (``torchlnn.driving.learning``).
3. **evaluate**: every policy and the expert drive ``eval_distance`` metres on each of the
   fixed ``eval_seeds``, with clean frames and with Gaussian pixel noise of each variance in
   ``noise_variances`` (``torchlnn.driving.evaluation``).
4. **analyse**: attention maps (VisualBackProp) with their SSIM robustness under noise, the
   share of neuron activity on the first principal component, neuron traces against the
   steering, and the trained NCP's wiring diagram (``torchlnn.analysis``,
   ``torchlnn.plotting``).
5. **report**: ``report.md`` and ``report.html`` (``torchlnn.driving.report``).

Each stage stores its results in the run folder, and an interrupted run started again with
the same settings (``resume="auto"``) continues where it stopped: finished stages and models
are skipped, and an interrupted training resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from torchlnn._io import write_json
from torchlnn.driving.policies import CONV_INITS, POLICY_KINDS

RUN_FILE = "lane_keeping.json"
REPORT_FILE = "report.md"

# Marks a field that does not change the results (where to write, how to display).
NOT_IN_HASH = {"in_hash": False}


@dataclass
class LaneKeepingConfig:
    """Settings of a lane-keeping run. ``PRESETS`` holds the named sets of values."""

    # Preset the other values came from: "quick" (the default, 10 to 20 minutes on 2 CPU
    # cores) or "full" (the paper-scale version).
    preset: Literal["quick", "full"] = "quick"
    # Environment: "sim" (the front-camera simulator) or "carracing" (Gymnasium's CarRacing).
    env: Literal["sim", "carracing"] = "sim"
    # Seed of the data, the weights, the training order and the augmentation.
    seed: int = 0

    # Expert episodes to collect.
    episodes: int = 20
    # Frames per episode (30 frames per second).
    episode_steps: int = 400
    # Share of episodes that start off the lane centre.
    recovery_fraction: float = 0.5
    # Standard deviation of the steering noise added while collecting, 1/m (labels stay clean).
    steer_noise: float = 0.005
    # Shares of the episodes held out for validation and for the offline test.
    valid_fraction: float = 0.15
    test_fraction: float = 0.15

    # Policies to train, from torchlnn.driving.policies.POLICY_KINDS.
    models: tuple[str, ...] = ("ncp-ltc", "cnn", "lstm")
    # Frames per training window, and frames between the starts of two training windows.
    window: int = 16
    stride: int = 8
    # Training epochs (at most: early stopping may end sooner) and windows per batch.
    epochs: int = 8
    batch_size: int = 16
    # Initialisation of the conv head: "glorot" (zero biases) or "pytorch" (PyTorch's defaults,
    # which start some last-layer channels dead; runs recorded before this setting used them).
    conv_init: str = field(default="glorot", metadata={"hash_default": "pytorch"})
    # Adam learning rate of the conv head, the same for every policy.
    # NOTE: at this rate one to three last-layer channels can die in the first Adam steps.
    # At 3e-4 they lived, but every policy drove worse under noise, so the best rate is open.
    head_lr: float = 1e-3
    # Adam learning rate of the controller; None uses each kind's rate in LEARNING_RATES.
    lr: float | None = None
    # Maximum global gradient norm.
    grad_clip: float = 1.0
    # Epochs without a better validation loss before training stops.
    patience: int = 3
    # Curve weighting of the loss, in metres: a frame of curvature k weighs exp(alpha * |k|).
    alpha: float = 100.0
    # Probabilities of a random shadow and of a lighting change per training window.
    shadow_probability: float = 0.5
    lighting_probability: float = 0.5
    # Lightning devices and nodes; more than one process trains with DDP.
    devices: str = "1"
    num_nodes: int = 1

    # Road seeds and distance per seed of the closed-loop evaluation, and the pixel-noise
    # variances tested on images in [0, 1].
    eval_seeds: tuple[int, ...] = (1000, 1001, 1002)
    eval_distance: float = 400.0
    noise_variances: tuple[float, ...] = (0.1, 0.2, 0.3)
    # Test frames used for attention maps and their robustness.
    attention_frames: int = 24

    # Where run folders go.
    runs_root: str = field(default="runs", metadata=NOT_IN_HASH)
    # Show progress bars.
    progress: bool = field(default=True, metadata=NOT_IN_HASH)
    # torch threads of this process; None keeps PyTorch's default.
    threads: int | None = field(default=None, metadata=NOT_IN_HASH)

    def __post_init__(self) -> None:
        unknown = [kind for kind in self.models if kind not in POLICY_KINDS]
        if unknown:
            raise ValueError(f"Unknown policy kinds {unknown}; choose from {list(POLICY_KINDS)}.")
        if not self.models:
            raise ValueError("models must name at least one policy kind.")
        if self.episodes < 3:
            raise ValueError(
                f"episodes must be at least 3 (training, validation and test), got {self.episodes}."
            )
        if self.conv_init not in CONV_INITS:
            raise ValueError(
                f"conv_init must be one of {CONV_INITS}, got {self.conv_init!r}."
            )
        if not self.head_lr > 0 or (self.lr is not None and not self.lr > 0):
            raise ValueError(
                f"Learning rates must be positive, got head_lr={self.head_lr}, lr={self.lr}."
            )
        if self.patience < 1:
            raise ValueError(f"patience counts epochs and must be at least 1, got {self.patience}.")
        from torchlnn.training.config import check_counts  # the training package loads Lightning

        counts = {
            "epochs": self.epochs,
            "episode_steps": self.episode_steps,
            "window": self.window,
            "stride": self.stride,
            "batch_size": self.batch_size,
        }
        check_counts(counts, threads=("threads", self.threads))
        if not self.eval_distance > 0:
            raise ValueError(
                f"eval_distance is in metres and must be positive, got {self.eval_distance}."
            )
        if any(not 0 < v for v in self.noise_variances):
            raise ValueError(f"noise_variances must be positive, got {self.noise_variances}.")
        self.models = tuple(self.models)
        self.eval_seeds = tuple(int(s) for s in self.eval_seeds)
        self.noise_variances = tuple(float(v) for v in self.noise_variances)


# Adam learning rates of the controllers per policy kind. The LTC and CT-RNN controllers learn
# with a larger rate, as in the LTC paper (0.01 for LTC, 0.001 for the other models); at 0.001
# the NCP-LTC policy was still far from the CNN's training loss after 8 epochs of the quick
# preset. The CfC controllers use 0.001. The conv head uses ``head_lr`` in every policy.
LEARNING_RATES = {
    "ncp-ltc": 5e-3,
    "ncp-cfc": 1e-3,
    "ctrnn": 5e-3,
    "cfc": 1e-3,
    "lstm": 1e-3,
    "cnn": 1e-3,
}

PRESETS: dict[str, dict[str, Any]] = {
    "quick": {},
    "full": {
        "episodes": 64,
        "episode_steps": 600,
        "models": POLICY_KINDS,
        "stride": 4,
        "epochs": 30,
        "patience": 5,
        "eval_seeds": (1000, 1001, 1002, 1003, 1004),
        "eval_distance": 1000.0,
        "attention_frames": 64,
    },
}


def preset_config(preset: str = "quick", **overrides: Any) -> LaneKeepingConfig:
    """Return the config of a preset with ``overrides`` applied on top."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose from {sorted(PRESETS)}.")
    values = {**PRESETS[preset], **overrides, "preset": preset}
    return LaneKeepingConfig(**values)


def config_fingerprint(config: LaneKeepingConfig) -> str:
    """Return a short hash of the settings that change the results."""
    from torchlnn.training.config import config_hash

    return config_hash(config)


# ---------------------------------------------------------------------------- run folders


def _setting_text(value: Any) -> str:
    """Write a setting as on the command line: lists comma-separated, None as "the default"."""
    if value is None:
        return "the default"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def differing_settings(recorded: dict[str, Any], config: LaneKeepingConfig) -> list[str]:
    """Return "--name: value in the run, value now" for each result-changing setting that differs.

    ``recorded`` is the config stored in a run's record (JSON, so tuples are lists). A setting
    missing from an older record had the value its field names as ``hash_default``.
    """
    differences = []
    for spec in dataclasses.fields(config):
        if not spec.metadata.get("in_hash", True):
            continue
        now = json.loads(json.dumps(getattr(config, spec.name)))
        before = recorded.get(spec.name, spec.metadata.get("hash_default", "(not recorded)"))
        if before != now:
            option = "--" + spec.name.replace("_", "-")
            differences.append(
                f"{option} is {_setting_text(before)} in the run and {_setting_text(now)} now"
            )
    return differences or ["the run's record is from another torchlnn version"]


def find_unfinished_run(root: Path, fingerprint: str) -> Path | None:
    """Return the newest run folder under ``root`` with this fingerprint and no report."""
    if not root.is_dir():
        return None
    candidates = []
    for folder in root.iterdir():
        record = folder / RUN_FILE
        if not record.is_file() or (folder / REPORT_FILE).exists():
            continue
        if json.loads(record.read_text()).get("fingerprint") == fingerprint:
            candidates.append(folder)
    return max(candidates, key=lambda folder: folder.name) if candidates else None


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


class Run:
    """A run folder and its record of finished stages (``lane_keeping.json``)."""

    def __init__(self, folder: Path, config: LaneKeepingConfig, fingerprint: str):
        self.folder = folder
        self.config = config
        self.record_path = folder / RUN_FILE
        if self.record_path.exists():
            self.record = json.loads(self.record_path.read_text())
        else:
            from torchlnn import __version__

            self.record = {
                "fingerprint": fingerprint,
                "config": dataclasses.asdict(config),
                "torchlnn_version": __version__,
                "torch_version": torch.__version__,
                "started": datetime.datetime.now().isoformat(timespec="seconds"),
                "stages": {},
                "timings": {},
            }
        self.record.setdefault("attempts", []).append(
            datetime.datetime.now().isoformat(timespec="seconds")
        )
        self.save()

    def save(self) -> None:
        write_json(self.record_path, self.record, default=_json_default)

    def done(self, stage: str) -> Any:
        return self.record["stages"].get(stage)

    def finish(self, stage: str, value: Any, seconds: float) -> None:
        self.record["stages"][stage] = value
        self.record["timings"][stage] = round(seconds, 1)
        # Wall times depend on the threads and on other programs sharing the cores.
        self.record.setdefault("conditions", {})[stage] = {
            "torch_threads": torch.get_num_threads(),
            "load_average": round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None,
            "cpus": os.cpu_count(),
        }
        self.save()


def check_run_dir(
    config: LaneKeepingConfig, run_dir: str | None = None, redo: str | None = None
) -> None:
    """Raise ``ValueError`` if ``run_dir`` and ``redo`` cannot be used with ``config``.

    A run folder must hold a run with the same settings, or none yet; ``redo`` needs the folder
    of a trained run. The command line calls this before any work starts.
    """
    if redo is not None and redo not in REDO_STAGES:
        raise ValueError(f"redo must be one of {REDO_STAGES}, got {redo!r}.")
    if redo is not None and (run_dir is None or not (Path(run_dir) / RUN_FILE).is_file()):
        raise ValueError(
            f"redo={redo!r} repeats a stage of a trained run, but {RUN_FILE} was not found in "
            f"run_dir={run_dir!r}. Pass the folder of a trained run with --run-dir."
        )
    record = Path(run_dir) / RUN_FILE if run_dir is not None else None
    if record is None or not record.is_file():
        return
    try:
        recorded = json.loads(record.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{record} is not valid JSON ({error}), so the run in {run_dir} cannot be "
            "continued. Pass another --run-dir, or remove that folder to start again there."
        ) from error
    if recorded.get("fingerprint") != config_fingerprint(config):
        differences = "; ".join(differing_settings(recorded.get("config", {}), config))
        raise ValueError(
            f"The run in {run_dir} was made with other settings: {differences}. Pass that "
            "run's values with these options, or leave out --run-dir to start a new run."
        )


def open_run(config: LaneKeepingConfig, resume: str = "auto", run_dir: str | None = None) -> Run:
    """Return the run to work in: ``run_dir``, an unfinished one to resume, or a new one."""
    fingerprint = config_fingerprint(config)
    root = Path(config.runs_root) / "lane-keeping"
    if run_dir is not None:
        check_run_dir(config, run_dir)
        folder = Path(run_dir)
    else:
        folder = find_unfinished_run(root, fingerprint) if resume == "auto" else None
        if folder is None:
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            folder = root / stamp
            suffix = 1
            while folder.exists():
                folder = root / f"{stamp}-{suffix}"
                suffix += 1
    folder.mkdir(parents=True, exist_ok=True)
    return Run(folder, config, fingerprint)


# ---------------------------------------------------------------------------- stages


def collect_stage(run: Run) -> dict[str, Any]:
    """Collect (or reuse) the expert data and return its folder and the episode split."""
    from torchlnn.driving.collect import CollectionConfig, collect
    from torchlnn.driving.learning import split_episode_indices

    config = run.config
    collection = CollectionConfig(
        env=config.env,
        episodes=config.episodes,
        steps=config.episode_steps,
        seed=config.seed,
        recovery_fraction=config.recovery_fraction,
        steer_noise=config.steer_noise,
    )
    identity = json.dumps(collection.identity(), sort_keys=True, default=str)
    import hashlib

    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    data_dir = Path(config.runs_root) / "lane-keeping" / "data" / f"{config.env}-{digest}"
    manifest = collect(data_dir, collection, progress=config.progress)

    # The cache may hold more episodes than this run requests (episode i has the same seed
    # in every collection), so keep the first ``config.episodes`` of them.
    episodes = [entry for entry in manifest["episodes"] if entry["index"] < config.episodes]
    indices = [entry["index"] for entry in episodes]
    split = split_episode_indices(indices, config.valid_fraction, config.test_fraction, config.seed)
    frames = sum(entry["frames"] for entry in episodes)
    first = episodes[0]
    with np.load(data_dir / first["file"]) as shard:
        height, width = shard["frames"].shape[1:3]
    return {
        "data_dir": str(data_dir),
        "frames": int(frames),
        "frame_size": [int(height), int(width)],
        "split": dataclasses.asdict(split),
    }


def label_scale(data: dict[str, Any]) -> float:
    """Return the standard deviation of the training labels (1/m), at least 1e-4."""
    from torchlnn.driving.dataset import DrivingWindows

    windows = DrivingWindows(
        data["data_dir"], window=1, episodes=data["split"]["train"], preload=False
    )
    return max(float(windows.label_statistics()["std"]), 1e-4)


def train_stage(run: Run, data: dict[str, Any]) -> dict[str, Any]:
    """Train every policy that has no result yet; return their results by kind."""
    from torchlnn.driving.learning import Augmentation, EpisodeSplit, train_policy

    config = run.config
    results = dict(run.done("train") or {})
    scale = label_scale(data)
    split = EpisodeSplit(**data["split"])
    augmentation = Augmentation(config.shadow_probability, config.lighting_probability)
    processes = _device_count(config.devices) * config.num_nodes
    options = {
        "seed": config.seed,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "grad_clip": config.grad_clip,
        "early_stopping_patience": config.patience,
        "devices": config.devices,
        "num_nodes": config.num_nodes,
        "strategy": "ddp" if processes > 1 else "auto",
        "progress_bar": config.progress,
        "threads": config.threads,
    }
    for number, kind in enumerate(config.models, start=1):
        if kind in results:
            continue
        print(f"[lane-keeping] training {kind} ({number} of {len(config.models)})", flush=True)
        started = time.perf_counter()
        model_dir = run.folder / "models" / kind
        lr = config.lr if config.lr is not None else LEARNING_RATES[kind]
        policy, result = train_policy(
            kind,
            Path(data["data_dir"]),
            split,
            model_dir,
            frame_size=tuple(data["frame_size"]),
            label_scale=scale,
            head_lr=config.head_lr,
            conv_init=config.conv_init,
            window=config.window,
            stride=config.stride,
            alpha=config.alpha,
            augmentation=augmentation,
            train_options={**options, "lr": lr},
        )
        torch.save(
            {"kind": kind, "config": policy.config, "state_dict": policy.state_dict()},
            model_dir / "policy.pt",
        )
        results[kind] = {
            "policy_file": str(model_dir / "policy.pt"),
            "test_mse": result.test_metrics.get("test_squared_error"),
            "best_epoch": result.best_epoch,
            "epochs": result.epochs_completed,
            "epoch_seconds": result.mean_epoch_seconds,
            "train_seconds": round(time.perf_counter() - started, 1),
            "parameters": policy.parameter_counts(),
            "label_scale": scale,
            "lr": lr,
        }
        run.record["stages"]["train"] = results
        run.save()
    return results


def _device_count(devices: str) -> int:
    text = str(devices).strip()
    if text.isdigit():
        return int(text)
    return len([part for part in text.split(",") if part.strip()])


def load_policy(path: str):
    """Load a policy saved by the train stage."""
    from torchlnn.driving.policies import DrivingPolicy

    saved = torch.load(path, map_location="cpu", weights_only=False)
    options = dict(saved["config"])
    kind = options.pop("kind")
    options["frame_size"] = tuple(options["frame_size"])
    policy = DrivingPolicy(kind, **options)
    policy.load_state_dict(saved["state_dict"])
    return policy.eval()


def evaluate_stage(run: Run, trained: dict[str, Any]) -> dict[str, Any]:
    """Drive every policy and the expert on the fixed seeds, clean and with noise."""
    from torchlnn.driving.evaluation import evaluate
    from torchlnn.driving.expert import PurePursuitExpert
    from torchlnn.driving.policies import PolicyDriver

    config = run.config
    results = dict(run.done("evaluate") or {})
    folder = run.folder / "evaluation"
    folder.mkdir(exist_ok=True)
    conditions = [("clean", [])] + [
        (f"noise {variance:g}", [f"noise:{variance:g}"]) for variance in config.noise_variances
    ]
    drivers = {"expert": lambda: PurePursuitExpert()}
    for kind, entry in trained.items():
        drivers[kind] = lambda path=entry["policy_file"]: PolicyDriver(load_policy(path))

    # Paths are plotted with clean frames and at the strongest noise, where departures show.
    plotted = {conditions[0][0], conditions[-1][0]}
    jobs = [
        (name, make, condition, perturbations)
        for name, make in drivers.items()
        for condition, perturbations in conditions
    ]
    for number, (name, make, condition, perturbations) in enumerate(jobs, start=1):
        key = f"{name} | {condition}"
        if key in results:
            continue
        outcome = evaluate(
            make(),
            env=config.env,
            seeds=config.eval_seeds,
            distance=config.eval_distance,
            perturbations=perturbations,
            name=name,
            keep_traces=condition in plotted,
            progress=config.progress,
            description=f"evaluate {number}/{len(jobs)}: {name}, {condition}",
        )
        stem = f"{name}-{condition.replace(' ', '-')}"
        outcome.save(folder, stem=stem, plot=condition in plotted)
        results[key] = {
            "policy": name,
            "condition": condition,
            "summary": outcome.summary,
            "plot": str(folder / f"{stem}.png") if condition in plotted else None,
        }
        run.record["stages"]["evaluate"] = results
        run.save()
    return results


def analyse_stage(run: Run, data: dict[str, Any], trained: dict[str, Any]) -> dict[str, Any]:
    """Compute attention robustness, activity PCA, neuron traces and wiring diagrams."""
    from torchlnn.driving.analysis import analyse_policies

    return analyse_policies(run.folder / "figures", run.config, data, trained)


# The stages in order. ``redo`` may repeat the last two: they read the trained policies and
# change nothing before them.
STAGES = ("collect", "train", "evaluate", "analyse")
REDO_STAGES = ("evaluate", "analyse")


def run_lane_keeping(
    config: LaneKeepingConfig | None = None,
    resume: str = "auto",
    run_dir: str | None = None,
    redo: str | None = None,
) -> Path:
    """Run (or resume) every stage and return the run folder, which contains ``report.md``.

    ``redo`` ("evaluate" or "analyse") repeats that stage and the ones after it in a finished
    or unfinished run, for example to add a newer analysis to a trained run (pass its
    ``run_dir``).
    """
    from torchlnn.driving.report import write_report

    config = config or LaneKeepingConfig()
    check_run_dir(config, run_dir, redo)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    run = open_run(config, resume, run_dir)
    if redo is not None:
        later = STAGES[STAGES.index(redo) :]
        finished_before = [
            name for name in run.record.get("finished_stages", []) if name not in later
        ]
        run.record["finished_stages"] = finished_before
        for name in later:  # a stage reuses its stored results, so drop them to redo it
            run.record["stages"].pop(name, None)
            run.record["timings"].pop(name, None)
        run.save()
    finished = run.record.get("finished_stages", [])
    state = f"resuming; finished stages: {', '.join(finished)}" if finished else "new"
    print(f"[lane-keeping] run folder: {run.folder} ({state})", flush=True)
    stages = (
        ("collect", lambda: collect_stage(run)),
        ("train", lambda: train_stage(run, run.done("collect"))),
        ("evaluate", lambda: evaluate_stage(run, run.done("train"))),
        ("analyse", lambda: analyse_stage(run, run.done("collect"), run.done("train"))),
    )
    try:
        for name, stage in stages:
            if name in run.record.get("finished_stages", []):
                continue
            started = time.perf_counter()
            print(f"[lane-keeping] {name} ...", flush=True)
            value = stage()
            run.finish(name, value, time.perf_counter() - started)
            run.record.setdefault("finished_stages", []).append(name)
            run.save()
    except (KeyboardInterrupt, SystemExit):  # Lightning turns Ctrl-C into SystemExit(1)
        print(
            f"\n[lane-keeping] interrupted. Finished work is kept in {run.folder}; run the "
            "same command again to resume from there.",
            file=sys.stderr,
            flush=True,
        )
        raise
    run.record["wall_seconds"] = round(sum(run.record["timings"].values()), 1)
    run.save()
    write_report(run.folder, run.record)
    print(f"[lane-keeping] report: {run.folder / REPORT_FILE} and report.html", flush=True)
    print(f"[lane-keeping] figures: {run.folder / 'figures'}", flush=True)
    return run.folder
