"""Run folders, checkpoints and resume: one call trains, tests and records a run.

Every run is a folder ``<runs_root>/<task>/<timestamp>/``:

=========================== ==============================================================
``run.json``                the resolved config, its hash, the seed, the torchlnn, torch and
                            Lightning versions, the git commit, the command line, the
                            hardware, and one entry per attempt (start time, resumed from)
``checkpoints/last.ckpt``   the state after the latest finished epoch (weights, optimiser,
                            scheduler, callbacks, random number generators)
``checkpoints/best.ckpt``   the state at the best epoch of the monitored metric
``logs/attempt-N/``         Lightning's CSV log (``metrics.csv``) of attempt N
``result.json``             written when the run finishes: test metrics at the best epoch,
                            seconds per epoch, parameter count
=========================== ==============================================================

Running the same command again (``resume="auto"``) finds the newest run of the same task
whose config hash matches. A finished run is returned as it is; an unfinished one resumes
from ``last.ckpt``. Because the training order depends only on the seed and the epoch (see
``torchlnn.training.datamodule``) and the random number generators are restored, a resumed
run reaches the same result as an uninterrupted one. Work since the last finished epoch is
lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _datetime
import json
import os
import platform
import random
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    ModelCheckpoint,
    ProgressBar,
    TQDMProgressBar,
)
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from torchlnn._io import write_json
from torchlnn.training.config import TrainConfig, config_hash, config_to_dict
from torchlnn.training.models import count_parameters

RUN_FILE = "run.json"
RESULT_FILE = "result.json"
LAUNCH_ID_VARIABLE = "TORCHLNN_LAUNCH_ID"

# Lightning advice that does not apply to these runs (in-memory tensor datasets need no
# worker processes, and short runs log less often than log_every_n_steps), and a
# deprecation that lightning 2.6 triggers inside torch 2.13's pytree module.
_IGNORED_LIGHTNING_WARNINGS = (
    r".*does not have many workers.*",
    r".*smaller than the logging interval.*",
    r".*LeafSpec.*is deprecated.*",
)


@dataclass
class RunResult:
    """Outcome of ``train_and_test``, also stored as ``result.json`` in the run folder."""

    run_dir: str
    task: str
    seed: int
    config_hash: str
    # Test metrics of the checkpoint with the best monitored validation value.
    test_metrics: dict[str, float]
    # Epoch (0-based) of that checkpoint, and its monitored value.
    best_epoch: int | None
    best_score: float | None
    # Epochs trained in total (over all attempts).
    epochs_completed: int
    # Wall-clock seconds of each training epoch (the training loop only, without validation).
    epoch_seconds: list[float]
    # Trainable parameters of the LightningModule.
    parameters: int
    # Attempts the run needed (1 when never interrupted).
    attempts: int
    # Seconds of the last attempt, from start to the end of testing.
    wall_seconds: float
    # CPU seconds of this process in each timed training epoch (epochs of attempts made
    # before this field existed are missing). On a shared machine this depends much less on
    # other jobs than the wall-clock time.
    epoch_cpu_seconds: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_epoch_seconds(self) -> float | None:
        """Mean wall-clock seconds per training epoch, or None when no epoch was timed."""
        if not self.epoch_seconds:
            return None
        return float(np.mean(self.epoch_seconds))

    @property
    def mean_epoch_cpu_seconds(self) -> float | None:
        """Mean CPU seconds per training epoch, or None when no epoch was timed."""
        if not self.epoch_cpu_seconds:
            return None
        return float(np.mean(self.epoch_cpu_seconds))


# ---------------------------------------------------------------------- callbacks, plugins


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file in the same folder, then rename it into place.

    A process killed while saving leaves the previous checkpoint intact: ``os.replace`` is
    atomic on POSIX file systems when both paths are on the same file system.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(checkpoint, temporary)
        os.replace(temporary, path)


class RandomStateCallback(Callback):
    """Store the Python, NumPy and torch random states in each checkpoint and restore them.

    Lightning restores weights, optimiser and loops but not these generators. Without them, a
    resumed run would draw other dropout masks or augmentations than an uninterrupted one.
    """

    def state_dict(self) -> dict[str, Any]:
        # Plain tuples and tensors only, so that checkpoints load with weights_only=True.
        kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
        return {
            "python": random.getstate(),
            "numpy": (
                kind,
                torch.from_numpy(keys.astype(np.int64)),
                position,
                has_gauss,
                cached_gaussian,
            ),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        random.setstate(state_dict["python"])
        kind, keys, position, has_gauss, cached_gaussian = state_dict["numpy"]
        np.random.set_state(
            (kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian)
        )
        torch.set_rng_state(state_dict["torch"])
        if state_dict.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class TrainingProgressBar(TQDMProgressBar):
    """Lightning's progress bar without the logger version ``v_num``, which reads like a
    metric (the CSV logger's version is the attempt folder, e.g. ``attempt-0``)."""

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


class EpochTimer(Callback):
    """Time each training epoch (the training loop only).

    Logs the wall-clock time as ``epoch_seconds`` and the CPU time of this process (all its
    threads, ``time.process_time``) as ``epoch_cpu_seconds``.

    The clock stops when validation starts, or at the end of the epoch when there is none,
    so the time is recorded before the end-of-epoch checkpoint is written. The times of
    earlier attempts are kept in the checkpoint, so a resumed run reports all epochs.
    """

    def __init__(self) -> None:
        self.epoch_seconds: list[float] = []
        self.epoch_cpu_seconds: list[float] = []
        self._start: tuple[float, float] | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = (time.perf_counter(), time.process_time())

    def _stop(self) -> None:
        if self._start is not None:
            wall_start, cpu_start = self._start
            self.epoch_seconds.append(time.perf_counter() - wall_start)
            self.epoch_cpu_seconds.append(time.process_time() - cpu_start)
            self._start = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._stop()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop()
        if self.epoch_seconds:
            pl_module.log("epoch_seconds", self.epoch_seconds[-1], on_epoch=True)
            pl_module.log("epoch_cpu_seconds", self.epoch_cpu_seconds[-1], on_epoch=True)

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch_seconds": list(self.epoch_seconds),
            "epoch_cpu_seconds": list(self.epoch_cpu_seconds),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epoch_seconds = list(state_dict["epoch_seconds"])
        self.epoch_cpu_seconds = list(state_dict.get("epoch_cpu_seconds", []))


# ---------------------------------------------------------------------- run folders


def environment_info() -> dict[str, Any]:
    """Versions, git commit and hardware of this process, for ``run.json`` and result tables."""
    import lightning

    import torchlnn

    info: dict[str, Any] = {
        "torchlnn_version": torchlnn.__version__,
        "torchlnn_commit": git_commit(),
        "torch_version": torch.__version__,
        "lightning_version": lightning.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
    }
    return info


def git_commit() -> str | None:
    """Return the commit of the torchlnn source tree (``-dirty`` with local changes), or None."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
            cwd=source.parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    dirty = "-dirty" if status.stdout.strip() else ""
    return commit.stdout.strip() + dirty


def cpu_name() -> str:
    """Return the CPU model name from /proc/cpuinfo, or ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def is_main_process() -> bool:
    """Return whether this process is global rank 0, judged from the launcher's environment."""
    for variable in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"):
        if os.environ.get(variable, "0") != "0":
            return False
    return True


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def find_run(runs_root: str | Path, task: str, hash_value: str) -> Path | None:
    """Return the newest run folder of ``task`` whose config hash is ``hash_value``, or None."""
    task_dir = Path(runs_root) / task
    if not task_dir.is_dir():
        return None
    matches = []
    for run_file in task_dir.glob(f"*/{RUN_FILE}"):
        try:
            record = _read_json(run_file)
        except (OSError, json.JSONDecodeError):
            continue
        if record.get("config_hash") == hash_value:
            matches.append(run_file.parent)
    return max(matches, key=lambda path: path.name) if matches else None


def new_run_dir(runs_root: str | Path, task: str) -> Path:
    """Create and return ``<runs_root>/<task>/<timestamp>/`` (with a suffix if it exists)."""
    stamp = _datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    task_dir = Path(runs_root) / task
    task_dir.mkdir(parents=True, exist_ok=True)
    candidate = task_dir / stamp
    suffix = 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            candidate = task_dir / f"{stamp}-{suffix}"
            suffix += 1


class _LaunchRendezvous:
    """Tells DDP processes started by Lightning which run folder rank 0 chose.

    Lightning's default DDP launcher starts the other processes by running the same command
    again, so they go through the same sequence of runs. Rank 0 numbers its runs and writes
    the chosen folder of run ``k`` to ``<runs_root>/.launches/<launch id>/<k>.json``. The
    other processes inherit the launch id through the environment and wait for that file.
    """

    def __init__(self) -> None:
        self.counter = 0

    def pointer(self, runs_root: str | Path) -> Path:
        launch_id = os.environ.setdefault(LAUNCH_ID_VARIABLE, uuid.uuid4().hex)
        path = Path(runs_root) / ".launches" / launch_id / f"{self.counter}.json"
        self.counter += 1
        return path


_RENDEZVOUS = _LaunchRendezvous()


def resolve_run_dir(config: TrainConfig, timeout: float = 600.0) -> tuple[Path, Path | None]:
    """Choose the run folder for ``config``; return it and the rendezvous file rank 0 wrote.

    Rank 0 uses ``config.run_dir`` if set, else (with ``resume="auto"``) the newest run with
    the same config hash, else a new timestamped folder. Other ranks read rank 0's choice.
    """
    pointer = _RENDEZVOUS.pointer(config.runs_root)
    if config.run_dir is not None:
        run_dir = Path(config.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir, None

    if not is_main_process():
        deadline = time.monotonic() + timeout
        while not pointer.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Timed out after {timeout:g} s waiting for rank 0 to choose a run folder "
                    f"({pointer}). For multi-node runs, pass the same --run-dir to every node."
                )
            time.sleep(0.05)
        return Path(_read_json(pointer)["run_dir"]), None

    run_dir = None
    if config.resume == "auto":
        run_dir = find_run(config.runs_root, config.task, config_hash(config))
    if run_dir is None:
        run_dir = new_run_dir(config.runs_root, config.task)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    write_json(pointer, {"run_dir": str(run_dir)})
    return run_dir, pointer


def _record_attempt(run_dir: Path, config: TrainConfig, resumed_from: Path | None) -> int:
    """Create or update ``run.json`` with this attempt; return the attempt's index."""
    run_file = run_dir / RUN_FILE
    if run_file.exists():
        record = _read_json(run_file)
    else:
        record = {
            "task": config.task,
            "seed": config.seed,
            "config_hash": config_hash(config),
            "config": config_to_dict(config),
            "config_class": type(config).__qualname__,
            "environment": environment_info(),
            "attempts": [],
        }
    record["attempts"].append(
        {
            "started": _datetime.datetime.now().isoformat(timespec="seconds"),
            "command": sys.argv,
            "resumed_from": None if resumed_from is None else str(resumed_from),
            "environment": environment_info() if record["attempts"] else None,
        }
    )
    write_json(run_file, record)
    return len(record["attempts"]) - 1


def load_result(run_dir: str | Path) -> RunResult:
    """Read the ``result.json`` of a finished run."""
    return RunResult(**_read_json(Path(run_dir) / RESULT_FILE))


# ---------------------------------------------------------------------- training


def _devices(value: str) -> int | str:
    text = str(value).strip()
    return int(text) if text.lstrip("-").isdigit() else text


def build_trainer(
    config: TrainConfig,
    run_dir: Path,
    attempt: int,
    callbacks: Sequence[Callback] = (),
) -> tuple[L.Trainer, ModelCheckpoint, EpochTimer]:
    """Build the Lightning Trainer of a run: checkpoints, CSV log, timer, early stopping."""
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor=config.monitor,
        mode=config.monitor_mode,
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
    )
    timer = EpochTimer()
    all_callbacks: list[Callback] = [checkpoint, timer, RandomStateCallback(), *callbacks]
    if config.progress_bar and not any(isinstance(c, ProgressBar) for c in callbacks):
        all_callbacks.append(TrainingProgressBar())  # a caller's own bar takes its place
    if config.early_stopping_patience is not None:
        all_callbacks.append(
            EarlyStopping(
                monitor=config.monitor,
                mode=config.monitor_mode,
                patience=config.early_stopping_patience,
            )
        )
    logger = CSVLogger(save_dir=str(run_dir), name="logs", version=f"attempt-{attempt}")

    optional_limits = {
        name: getattr(config, name)
        for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches")
        if getattr(config, name) is not None
    }
    for name, value in optional_limits.items():
        if float(value).is_integer() and value >= 1:
            optional_limits[name] = int(value)

    trainer = L.Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices=_devices(config.devices),
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        precision=config.precision,
        deterministic=config.deterministic,
        gradient_clip_val=config.grad_clip,
        callbacks=all_callbacks,
        logger=logger,
        enable_progress_bar=config.progress_bar,
        enable_model_summary=False,
        log_every_n_steps=config.log_every_n_steps,
        use_distributed_sampler=False,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(run_dir),
        **optional_limits,
    )
    return trainer, checkpoint, timer


@contextlib.contextmanager
def flushing_denormals(enabled: bool = True):
    """Flush subnormal floats to zero on the CPU inside the block, then restore the setting.

    A trained network can carry values below float32's normal range (about 1.2e-38), for
    example gradients through saturated gates. CPUs compute with such subnormal numbers many
    times slower: a trained CfC on event-based XOR took 8 times the CPU time per batch of a
    fresh one until they were flushed. Results change only where those values occur.
    """
    if not enabled:
        yield
        return
    tiny = torch.tensor(1e-39)  # a float32 subnormal number
    was_flushing = bool(tiny * 1.0 == 0)
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was_flushing)


def train_and_test(
    config: TrainConfig,
    build: Callable[[], tuple[L.LightningModule, L.LightningDataModule]],
    callbacks: Sequence[Callback] = (),
) -> RunResult:
    """Train a run to the end (resuming if it was interrupted), test its best checkpoint.

    Args:
        config: the resolved run config; ``config.task`` names the run's folder.
        build: called after seeding, returns the LightningModule and the DataModule. Building
            the model after ``seed_everything`` makes its initial weights depend on the seed.
        callbacks: extra Lightning callbacks.

    Returns the ``RunResult``, also written to ``result.json``. When the run already finished
    (same config hash, ``resume="auto"``), its stored result is returned without training.
    """
    with flushing_denormals(config.flush_denormal):
        return _train_and_test(config, build, callbacks)


def _train_and_test(
    config: TrainConfig,
    build: Callable[[], tuple[L.LightningModule, L.LightningDataModule]],
    callbacks: Sequence[Callback],
) -> RunResult:
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    start = time.perf_counter()
    run_dir, pointer = resolve_run_dir(config)

    if (run_dir / RESULT_FILE).exists() and config.resume == "auto":
        if pointer is not None:
            pointer.unlink(missing_ok=True)
        return load_result(run_dir)

    last = run_dir / "checkpoints" / "last.ckpt"
    resume_from = last if last.exists() else None
    attempt = _record_attempt(run_dir, config, resume_from) if is_main_process() else 0

    L.seed_everything(config.seed, workers=True, verbose=False)
    module, datamodule = build()

    with warnings.catch_warnings():
        for pattern in _IGNORED_LIGHTNING_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        trainer, checkpoint, timer = build_trainer(config, run_dir, attempt, callbacks)
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
        # Read the epoch times now: testing a checkpoint restores the callbacks' state as it
        # was at that checkpoint's epoch.
        epoch_seconds = [float(s) for s in timer.epoch_seconds]
        epoch_cpu_seconds = [float(s) for s in timer.epoch_cpu_seconds]
        epochs_completed = trainer.current_epoch
        if pointer is not None:
            pointer.unlink(missing_ok=True)
        best_path = checkpoint.best_model_path or None
        test_output = trainer.test(
            module, datamodule=datamodule, ckpt_path=best_path, verbose=False
        )

    best_epoch = None
    if best_path:
        best_epoch = int(torch.load(best_path, map_location="cpu", weights_only=False)["epoch"])
    best_score = checkpoint.best_model_score
    result = RunResult(
        run_dir=str(run_dir),
        task=config.task,
        seed=config.seed,
        config_hash=config_hash(config),
        test_metrics={key: float(value) for key, value in test_output[0].items()},
        best_epoch=best_epoch,
        best_score=None if best_score is None else float(best_score),
        epochs_completed=epochs_completed,
        epoch_seconds=epoch_seconds,
        epoch_cpu_seconds=epoch_cpu_seconds,
        parameters=count_parameters(module),
        attempts=attempt + 1,
        wall_seconds=time.perf_counter() - start,
    )
    if trainer.is_global_zero:
        write_json(run_dir / RESULT_FILE, dataclasses.asdict(result))
    return result
