"""Training lane-keeping policies on collected expert data, with the torchlnn training engine.

The loss is the squared curvature error weighted towards curves,

    loss = mean( exp(alpha * |k|) * ((k_hat - k) / s)^2 ) / mean( exp(alpha * |k|) )

over every frame of a batch, where ``k`` is the expert's curvature (1/m), ``k_hat`` the
policy's, ``alpha`` (in metres) sets how much more a curve counts than a straight, and ``s`` is
the standard deviation of the training labels, so the loss is of order one. Training windows
are augmented with random cast shadows and brightness and contrast changes
(``torchlnn.driving.perturbations``), each applied with a given probability.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from torchlnn.driving.dataset import DrivingWindows
from torchlnn.driving.perturbations import BrightnessContrast, Shadow
from torchlnn.driving.policies import DrivingPolicy, build_policy


@dataclass
class Augmentation:
    """Random shadows and lighting for training windows (numpy frames (T, H, W, 3) in [0, 1]).

    Each window gets a shadow with probability ``shadow_probability`` and a brightness and
    contrast change with probability ``lighting_probability``; the same draw applies to all
    frames of the window, as a shadow or a lighting change lasts longer than 16 frames. Draws
    come from NumPy's global generator, which the training engine seeds and checkpoints.
    """

    shadow_probability: float = 0.5
    lighting_probability: float = 0.5
    strength: float = 1.0

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(np.random.randint(0, 2**31 - 1))
        for probability, kind in (
            (self.shadow_probability, Shadow),
            (self.lighting_probability, BrightnessContrast),
        ):
            if rng.random() < probability:
                perturbation = kind(self.strength * rng.uniform(0.3, 1.0))
                perturbation.reset(rng)
                frames = perturbation(frames)
        return frames


def weighted_loss(alpha: float, scale: float):
    """Return the curve-weighted loss of the module docstring, for ``SequenceTask``."""

    def loss(prediction: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
        weight = torch.exp(alpha * target.abs())
        error = ((prediction - target) / scale).pow(2)
        return (weight * error).sum() / weight.sum()

    return loss


def policy_step(model: DrivingPolicy, batch) -> tuple[Tensor, Tensor, None]:
    """Run a policy on a batch ``(frames (B, T, 3, H, W), labels (B, T, 1))``."""
    frames, labels = batch
    curvature, _ = model(frames)
    return curvature, labels[..., 0], None


def make_policy_task(policy: DrivingPolicy, head_lr: float, controller_lr: float, **options):
    """Return a ``SequenceTask`` whose Adam uses one rate for the conv head and one for the rest.

    Every policy trains its perception at the same rate, so the controllers are compared on
    equal terms, while liquid controllers get the larger rate they need (the LTC paper used
    0.01 for LTC). One rate of 0.005 for the whole policy let the conv head's ReLUs die in some
    runs, leaving the NCP's output constant.
    """
    from torchlnn.training import SequenceTask

    class PolicyTask(SequenceTask):
        def configure_optimizers(self):
            head = [p for p in self.model.head.parameters() if p.requires_grad]
            head_ids = {id(p) for p in head}
            rest = [
                p for p in self.model.parameters() if p.requires_grad and id(p) not in head_ids
            ]
            return torch.optim.Adam(
                [{"params": head, "lr": head_lr}, {"params": rest, "lr": controller_lr}],
                weight_decay=self.weight_decay,
            )

    return PolicyTask(policy, lr=controller_lr, **options)


def squared_error(prediction: Tensor, target: Tensor, mask: Tensor | None):
    """Per-frame squared curvature error, (1/m)^2, with unit weights."""
    error = (prediction - target).pow(2)
    return error, torch.ones_like(error)


@dataclass
class EpisodeSplit:
    """Episode indices of the training, validation and test sets (whole episodes only)."""

    train: list[int]
    valid: list[int]
    test: list[int]


def split_episode_indices(
    indices: Sequence[int], valid_fraction: float, test_fraction: float, seed: int
) -> EpisodeSplit:
    """Split episodes at random into three sets, each with at least one episode."""
    if len(indices) < 3:
        raise ValueError(
            f"Training needs at least 3 episodes (training, validation, test), got "
            f"{len(indices)}. Collect more episodes."
        )
    order = np.random.default_rng(seed).permutation(np.asarray(sorted(indices)))
    valid_count = max(1, int(round(valid_fraction * len(order))))
    test_count = max(1, int(round(test_fraction * len(order))))
    if valid_count + test_count >= len(order):
        valid_count, test_count = 1, 1
    valid = sorted(int(i) for i in order[:valid_count])
    test = sorted(int(i) for i in order[valid_count : valid_count + test_count])
    train = sorted(int(i) for i in order[valid_count + test_count :])
    return EpisodeSplit(train=train, valid=valid, test=test)


def train_policy(
    kind: str,
    data_dir: Path,
    split: EpisodeSplit,
    model_dir: Path,
    *,
    frame_size: tuple[int, int],
    label_scale: float,
    head_lr: float,
    window: int,
    stride: int,
    alpha: float,
    augmentation: Augmentation | None,
    train_options: dict[str, Any],
    conv_init: str = "glorot",
) -> tuple[DrivingPolicy, Any]:
    """Train one policy with the engine (resuming an interrupted run) and return it and the result.

    The returned policy carries the weights of the epoch with the best validation loss.
    """
    from torchlnn.training import SplitsDataModule, TrainConfig, train_and_test

    # Lightning's start-up notes (accelerators found, logging tips) would bury the progress.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

    def datasets() -> dict[str, DrivingWindows]:
        return {
            "train": DrivingWindows(
                data_dir, window=window, stride=stride, episodes=split.train,
                transform=augmentation,
            ),
            "valid": DrivingWindows(data_dir, window=window, stride=window, episodes=split.valid),
            "test": DrivingWindows(data_dir, window=window, stride=window, episodes=split.test),
        }

    config = TrainConfig(
        task=kind,
        runs_root=str(model_dir.parent),
        run_dir=str(model_dir),
        monitor="valid_loss",
        **train_options,
    )

    def build():
        policy = build_policy(kind, frame_size=frame_size, conv_init=conv_init)
        policy.curvature_scale.fill_(label_scale)
        task = make_policy_task(
            policy,
            head_lr=head_lr,
            controller_lr=config.lr,
            loss=weighted_loss(alpha, label_scale),
            step=policy_step,
            metrics={"squared_error": squared_error},
            weight_decay=config.weight_decay,
        )
        data = SplitsDataModule(datasets, batch_size=config.batch_size, seed=config.seed)
        return task, data

    result = train_and_test(config, build)

    policy = build_policy(kind, frame_size=frame_size, conv_init=conv_init)
    checkpoint = Path(result.run_dir) / "checkpoints" / "best.ckpt"
    if not checkpoint.exists():
        checkpoint = Path(result.run_dir) / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    policy.load_state_dict({key[len("model.") :]: value for key, value in state.items()})
    return policy.eval(), result
