"""The LightningModule of the training engine: a model, a loss and metrics.

``SequenceTask`` uses nothing of the model or the data beyond three callables, so the
same module trains the papers' sequence models and the lane-keeping policies:

- ``step(model, batch) -> (prediction, target, mask)`` runs the model on one batch;
- ``loss(prediction, target, mask) -> scalar`` is minimised;
- each metric ``metric(prediction, target, mask) -> (values, weights)`` is averaged over a
  whole split as ``sum(values * weights) / sum(weights)``, exactly, whatever the batch size
  and across DDP processes (``torchmetrics.MeanMetric``).

``regression_task`` and ``classification_task`` fill these in for the ``torchlnn.data``
batches ``(inputs, timespans, mask, targets)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric

from torchlnn.training.models import last_step

StepFn = Callable[[nn.Module, Any], "tuple[Tensor, Tensor, Tensor | None]"]
LossFn = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]
MetricFn = Callable[[Tensor, Tensor, "Tensor | None"], "tuple[Tensor, Tensor]"]

STAGES = ("train", "valid", "test")


class SequenceTask(L.LightningModule):
    """Train ``model`` by minimising ``loss``, and report ``metrics`` per split.

    Logged per epoch: ``<stage>_loss`` (the batch losses averaged with the batch sizes as
    weights) and ``<stage>_<metric>`` for each metric, with stage ``train``, ``valid`` or
    ``test``.

    Args:
        model: any ``torch.nn.Module``.
        loss: ``loss(prediction, target, mask)``, a scalar to minimise.
        step: ``step(model, batch)`` returning ``(prediction, target, mask)``; ``mask`` may
            be None.
        metrics: name to ``metric(prediction, target, mask) -> (values, weights)``; the two
            tensors broadcast to each other.
        optimizer: "adam", "adamw" or "rmsprop" (RMSprop with decay rate ``alpha=0.9``).
        lr: initial learning rate.
        lr_decay: learning-rate factor per epoch; the rate at global step ``k`` is
            ``lr * lr_decay ** (k / steps_per_epoch)``.
        weight_decay: the optimiser's weight decay.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: LossFn,
        step: StepFn,
        metrics: Mapping[str, MetricFn] | None = None,
        optimizer: str = "adam",
        lr: float = 1e-3,
        lr_decay: float = 1.0,
        weight_decay: float = 0.0,
    ):
        super().__init__()
        if optimizer not in ("adam", "adamw", "rmsprop"):
            raise ValueError(f"optimizer must be 'adam', 'adamw' or 'rmsprop', got {optimizer!r}.")
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}.")
        if not 0 < lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {lr_decay!r}.")
        self.model = model
        self.loss_fn = loss
        self.step_fn = step
        self.metric_fns = dict(metrics or {})
        self.optimizer_name = optimizer
        self.lr = float(lr)
        self.lr_decay = float(lr_decay)
        self.weight_decay = float(weight_decay)

        self.averages = nn.ModuleDict()
        for stage in STAGES:
            for name in ("loss", *self.metric_fns):
                self.averages[f"{stage}_{name}"] = MeanMetric()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    # ------------------------------------------------------------------ steps

    def _shared_step(self, batch: Any, stage: str) -> Tensor:
        prediction, target, mask = self.step_fn(self.model, batch)
        loss = self.loss_fn(prediction, target, mask)
        batch_size = prediction.shape[0]

        self.averages[f"{stage}_loss"].update(loss.detach(), batch_size)
        with torch.no_grad():
            for name, metric in self.metric_fns.items():
                values, weights = metric(prediction.detach(), target, mask)
                values, weights = torch.broadcast_tensors(values, weights.to(values.dtype))
                self.averages[f"{stage}_{name}"].update(values, weights)
        return loss

    def training_step(self, batch: Any, batch_index: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Any, batch_index: int) -> None:
        self._shared_step(batch, "valid")

    def test_step(self, batch: Any, batch_index: int) -> None:
        self._shared_step(batch, "test")

    def _log_epoch(self, stage: str) -> None:
        for name in ("loss", *self.metric_fns):
            average = self.averages[f"{stage}_{name}"]
            if average.update_count == 0:
                continue
            self.log(f"{stage}_{name}", average.compute(), prog_bar=stage != "test")
            average.reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("valid")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    # ------------------------------------------------------------------ optimisation

    def configure_optimizers(self) -> Any:
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        if self.optimizer_name == "adam":
            optimizer = torch.optim.Adam(parameters, lr=self.lr, weight_decay=self.weight_decay)
        elif self.optimizer_name == "adamw":
            optimizer = torch.optim.AdamW(parameters, lr=self.lr, weight_decay=self.weight_decay)
        else:
            optimizer = torch.optim.RMSprop(
                parameters, lr=self.lr, alpha=0.9, weight_decay=self.weight_decay
            )
        if self.lr_decay == 1.0:
            return optimizer

        steps_per_epoch = max(
            1, int(self.trainer.estimated_stepping_batches // max(1, self.trainer.max_epochs))
        )
        decay = self.lr_decay

        def factor(step: int) -> float:
            return decay ** (step / steps_per_epoch)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


# ---------------------------------------------------------------------- torchlnn.data tasks


def sequence_step(model: nn.Module, batch: Any) -> tuple[Tensor, Tensor, Tensor]:
    """Run a model on a ``torchlnn.data`` batch; return per-step outputs (B, T, O)."""
    inputs, timespans, mask, targets = batch
    return model(inputs, timespans, mask), targets, mask


def last_step_step(model: nn.Module, batch: Any) -> tuple[Tensor, Tensor, Tensor]:
    """Run a model on a ``torchlnn.data`` batch; return the output at the last real step (B, O)."""
    inputs, timespans, mask, targets = batch
    outputs = model(inputs, timespans, mask)  # (B, T, O)
    return last_step(outputs, mask), targets, mask


def masked_mse(prediction: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
    """Mean squared error over the real steps and all features of (B, T, F) tensors."""
    values, weights = squared_error(prediction, target, mask)
    return (values * weights).sum() / weights.expand_as(values).sum().clamp(min=1)


def squared_error(prediction: Tensor, target: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Per-element squared errors (B, T, F) with weight 1 at real steps and 0 at padding."""
    values = (prediction - target) ** 2  # (B, T, F)
    if mask is None:
        return values, torch.ones_like(values)
    return values, mask.unsqueeze(-1).to(values.dtype).expand_as(values)  # (B, T, F)


def class_loss(logits: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
    """Cross-entropy of (B, C) logits; with C = 1, binary cross-entropy of one logit."""
    if logits.shape[-1] == 1:
        return F.binary_cross_entropy_with_logits(logits.squeeze(-1), target.to(logits.dtype))
    return F.cross_entropy(logits, target)


def accuracy(logits: Tensor, target: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Per-sample correctness (B,) with weight 1; a single logit predicts class 1 when > 0."""
    if logits.shape[-1] == 1:
        predicted = (logits.squeeze(-1) > 0).long()
    else:
        predicted = logits.argmax(dim=-1)
    correct = (predicted == target).float()  # (B,)
    return correct, torch.ones_like(correct)


def regression_task(model: nn.Module, **optimisation: Any) -> SequenceTask:
    """Build a ``SequenceTask`` for per-step regression: masked MSE loss, ``mse`` metric."""
    return SequenceTask(
        model,
        loss=masked_mse,
        step=sequence_step,
        metrics={"mse": squared_error},
        **optimisation,
    )


def classification_task(model: nn.Module, **optimisation: Any) -> SequenceTask:
    """Build a ``SequenceTask`` for sequence classification read at the last real step.

    The model's output size is the number of classes, or 1 for a binary task with one logit.
    """
    return SequenceTask(
        model,
        loss=class_loss,
        step=last_step_step,
        metrics={"accuracy": accuracy},
        **optimisation,
    )
