"""Typed run configurations and their command-line overrides.

A run is described by a dataclass with one comment per field. ``add_config_arguments`` turns
its fields into ``--field-name`` options, ``config_from_args`` builds the resolved config
back, and ``config_hash`` fingerprints the fields that change the result, which is how a
rerun of the same command finds the run it should resume.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

# Marks a field that does not change the trained result (where to write, how to display).
NOT_IN_HASH = {"in_hash": False}


@dataclass
class TrainConfig:
    """Settings of one training run: optimisation, devices, checkpoints and logging."""

    # Run folders go to <runs_root>/<task>/<timestamp>/.
    task: str = "run"
    # Seed of the weights, the shuffling and every random draw of the run.
    seed: int = 0
    # Training epochs (an upper bound when early stopping is on).
    epochs: int = 10
    # Samples per optimiser step on each device; the global batch is batch_size * devices.
    batch_size: int = 32
    # "adam", "adamw" or "rmsprop" (RMSprop with decay rate 0.9, as Keras).
    optimizer: Literal["adam", "adamw", "rmsprop"] = "adam"
    # Initial learning rate.
    lr: float = 1e-3
    # Learning-rate factor per epoch, applied smoothly at every step (1.0 = constant).
    lr_decay: float = 1.0
    # L2 weight decay of the optimiser (decoupled for adamw).
    weight_decay: float = 0.0
    # Maximum global gradient norm; None turns clipping off.
    grad_clip: float | None = None
    # Metric that selects the best checkpoint and drives early stopping.
    monitor: str = "valid_loss"
    # Whether a smaller ("min") or larger ("max") monitored value is better.
    monitor_mode: Literal["min", "max"] = "min"
    # Epochs without improvement before training stops; None turns early stopping off.
    early_stopping_patience: int | None = None
    # Lightning accelerator: "cpu", "gpu", "auto", ...
    accelerator: str = "cpu"
    # Devices per node (an int, or a Lightning device string such as "0,1").
    devices: str = "1"
    # Nodes for multi-node DDP.
    num_nodes: int = 1
    # Lightning strategy: "auto", "ddp", "ddp_spawn", ...
    strategy: str = "auto"
    # Lightning precision, for example "32-true" or "bf16-mixed".
    precision: str = "32-true"
    # Use deterministic algorithms where PyTorch has them.
    deterministic: bool = True
    # Cap on training batches per epoch (an int count or a float fraction); None = all.
    limit_train_batches: float | None = None
    # Cap on validation batches per epoch; None = all.
    limit_val_batches: float | None = None
    # Cap on test batches; None = all.
    limit_test_batches: float | None = None
    # Root folder of the run folders.
    runs_root: str = field(default="runs", metadata=NOT_IN_HASH)
    # Use this run folder instead of a new timestamped one (needed for multi-node runs).
    run_dir: str | None = field(default=None, metadata=NOT_IN_HASH)
    # "auto": resume the latest unfinished run with the same config; "never": start anew.
    resume: Literal["auto", "never"] = field(default="auto", metadata=NOT_IN_HASH)
    # Show a progress bar.
    progress_bar: bool = field(default=True, metadata=NOT_IN_HASH)
    # Training steps between two rows of the CSV log.
    log_every_n_steps: int = field(default=50, metadata=NOT_IN_HASH)
    # DataLoader worker processes.
    num_workers: int = field(default=0, metadata=NOT_IN_HASH)
    # torch.set_num_threads for this process; None leaves PyTorch's default.
    threads: int | None = field(default=None, metadata=NOT_IN_HASH)
    # Flush subnormal floats (below about 1.2e-38 in float32) to zero on the CPU while training.
    # Trained cells can produce them, and CPU arithmetic on them is many times slower.
    flush_denormal: bool = field(default=True, metadata=NOT_IN_HASH)

    def __post_init__(self) -> None:
        check_counts(
            {"--epochs": self.epochs, "--batch-size": self.batch_size},
            threads=("--threads", self.threads),
        )
        if not self.lr > 0:
            raise ValueError(f"--lr must be positive, got {self.lr}.")


def check_counts(counts: dict[str, int], threads: tuple[str, int | None]) -> None:
    """Raise ValueError for a count below 1 or a thread count below 1 (None is allowed).

    ``counts`` maps the name to show in the message to the value. ``threads`` is the name and
    value of a torch thread setting, where None keeps PyTorch's default.
    """
    for name, value in counts.items():
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}.")
    name, value = threads
    if value is not None and value < 1:
        raise ValueError(
            f"{name} must be at least 1, got {value}. Leave it out to keep PyTorch's default."
        )


def config_to_dict(config: Any) -> dict[str, Any]:
    """Return the config's fields as a JSON-serialisable dict."""
    return dataclasses.asdict(config)


def _has_hash_default(spec: dataclasses.Field, value: Any) -> bool:
    return "hash_default" in spec.metadata and value == spec.metadata["hash_default"]


def config_hash(config: Any) -> str:
    """Return a short fingerprint of the fields that change the trained result.

    Fields whose metadata sets ``in_hash=False`` (output folders, display) are left out, so
    a rerun with another progress-bar setting still resumes the same run. A field added after
    runs were recorded sets ``hash_default`` to the value those runs had in effect: it is left
    out while it has that value, so their fingerprints stay valid.
    """
    values = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if f.metadata.get("in_hash", True)
        and not _has_hash_default(f, getattr(config, f.name))
    }
    values["__class__"] = type(config).__name__
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _optional(parse):
    def parse_optional(text: str):
        if text.strip().lower() in ("none", "null"):
            return None
        return parse(text)

    parse_optional.__name__ = getattr(parse, "__name__", "value")
    return parse_optional


def _parser_for(annotation: Any) -> tuple[Any, list[Any] | None]:
    """Return (parse function, choices) for a field's type hint."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
        parse, choices = _parser_for(arguments[0])
        if type(None) in typing.get_args(annotation):
            parse = _optional(parse)
        return parse, choices
    if origin is Literal:
        choices = list(typing.get_args(annotation))
        return type(choices[0]), choices
    if annotation is bool:
        return _parse_bool, None
    if annotation in (int, float, str):
        return annotation, None
    raise TypeError(f"Config fields of type {annotation!r} cannot be set from the command line.")


def add_config_arguments(
    parser: argparse.ArgumentParser, config_class: type, skip: tuple[str, ...] = ()
) -> None:
    """Add one ``--field-name`` option per field of ``config_class`` (default: the field's).

    An option that is not given is absent from the parsed namespace (its ``dest`` is
    ``cfg_<field>``), so ``config_from_args`` can tell an override from a default.
    """
    hints = typing.get_type_hints(config_class)
    group = parser.add_argument_group(f"{config_class.__name__} overrides")
    for f in dataclasses.fields(config_class):
        if f.name in skip:
            continue
        parse, choices = _parser_for(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        group.add_argument(
            _option_name(f.name),
            dest=f"cfg_{f.name}",
            type=parse,
            choices=choices,
            default=argparse.SUPPRESS,
            metavar=None if choices else f.name.upper(),
            help=f"(default: {default})",
        )


def config_from_args(config_class: type, args: argparse.Namespace, **base: Any) -> Any:
    """Build ``config_class`` from ``base`` values overridden by the options given in ``args``.

    The value ``none`` given for an optional field sets it to None.
    """
    values = dict(base)
    for f in dataclasses.fields(config_class):
        dest = f"cfg_{f.name}"
        if dest in vars(args):
            values[f.name] = getattr(args, dest)
    return config_class(**values)
