"""The return type shared by every loader in :mod:`torchlnn.data`.

Shape letters used throughout the package:

- ``N``: number of sequences in a split.
- ``T``: number of steps per sequence, after padding.
- ``F``: number of input features per step.
- ``F_out``: number of regression targets per step.

Every loader returns a :class:`SequenceSplits` with a ``train``, ``valid`` and ``test``
:class:`SequenceData` and one :class:`DatasetInfo`. Padding is always at the end of a sequence
(right padding): the real steps of sequence ``n`` are ``0 .. lengths[n] - 1``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import TensorDataset

SPLITS: tuple[str, ...] = ("train", "valid", "test")
TASKS: tuple[str, ...] = ("regression", "classification")

# Value stored in `timespans` at padded steps, which models must ignore through the mask. It is
# 1.0 and not 0.0 because a model that does run over the padding then still gets a valid step
# size, while an ODE solver step of length 0 can divide by zero.
PAD_TIMESPAN = 1.0


@dataclass(frozen=True)
class DatasetInfo:
    """Metadata of a data set, identical for its three splits."""

    name: str
    """Registry name, as accepted by :func:`torchlnn.data.load`."""

    task: Literal["regression", "classification"]
    """``"regression"``: targets are ``(N, T, F_out)`` float32, one target vector per step.
    ``"classification"``: targets are ``(N,)`` int64, one class per sequence."""

    source: str
    """Origin of the data: shipped file, generator or installed package, with its version."""

    license: str
    """License of the data (not of torchlnn), or a statement that it is generated."""

    num_classes: int | None = None
    """Number of classes for classification; ``None`` for regression."""

    class_names: tuple[str, ...] | None = None
    """Name of each class index, where known."""

    input_names: tuple[str, ...] | None = None
    """Name of each of the ``F`` input features, where known."""

    target_names: tuple[str, ...] | None = None
    """Name of each of the ``F_out`` regression targets, where known."""

    sampling_period: float | None = None
    """Seconds per unit of ``timespans`` (one sampling period), where the data has a clock."""

    details: Mapping[str, Any] = field(default_factory=dict)
    """Parameters that produced the data (seeds, window, stride, ...), JSON-serialisable, so
    that a training run can save them next to its results."""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}.")
        if self.task == "classification" and (self.num_classes is None or self.num_classes < 2):
            raise ValueError(
                f"A classification data set needs num_classes >= 2, got {self.num_classes!r}."
            )
        if self.task == "regression" and self.num_classes is not None:
            raise ValueError(
                f"A regression data set has num_classes=None, got {self.num_classes!r}."
            )
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"class_names has {len(self.class_names)} entries but num_classes is "
                f"{self.num_classes}."
            )


@dataclass(frozen=True)
class SequenceData:
    """One split of a sequence data set, as tensors.

    Attributes:
        inputs: ``(N, T, F)`` float32. Padded steps contain zeros.
        targets: ``(N, T, F_out)`` float32 for regression (padded steps contain zeros), or
            ``(N,)`` int64 class indices for classification.
        timespans: ``(N, T)`` float32 elapsed time between the previous step and this one, in
            sampling periods (1.0 = one period), or ``None`` when the sequence is regularly
            sampled (every step 1.0). Padded steps contain 1.0.
        mask: ``(N, T)`` bool, True at real steps and False at padding, or ``None`` when no
            sequence is padded. Padding is always at the end of a sequence.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    timespans: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        _check_tensor("inputs", self.inputs, torch.float32, ndim=3)
        num_sequences, steps, _ = self.inputs.shape

        if self.targets.dtype == torch.float32:
            _check_tensor("targets", self.targets, torch.float32, ndim=3)
            if self.targets.shape[:2] != (num_sequences, steps):
                raise ValueError(
                    f"Regression targets must have shape (N, T, F_out) = ({num_sequences}, "
                    f"{steps}, F_out) to match inputs, got {tuple(self.targets.shape)}."
                )
        elif self.targets.dtype == torch.int64:
            _check_tensor("targets", self.targets, torch.int64, ndim=1)
            if self.targets.shape[0] != num_sequences:
                raise ValueError(
                    f"Classification targets must have shape (N,) = ({num_sequences},), got "
                    f"{tuple(self.targets.shape)}."
                )
        else:
            raise TypeError(
                "targets must be float32 (regression, shape (N, T, F_out)) or int64 "
                f"(classification, shape (N,)), got dtype {self.targets.dtype}."
            )

        if self.timespans is not None:
            _check_tensor("timespans", self.timespans, torch.float32, ndim=2)
            if self.timespans.shape != (num_sequences, steps):
                raise ValueError(
                    f"timespans must have shape (N, T) = ({num_sequences}, {steps}), got "
                    f"{tuple(self.timespans.shape)}."
                )
            if not bool(torch.all(self.timespans > 0)):
                raise ValueError("timespans must be positive at every step, padded steps too.")

        if self.mask is not None:
            _check_tensor("mask", self.mask, torch.bool, ndim=2)
            if self.mask.shape != (num_sequences, steps):
                raise ValueError(
                    f"mask must have shape (N, T) = ({num_sequences}, {steps}), got "
                    f"{tuple(self.mask.shape)}."
                )
            lengths = self.mask.sum(dim=1)  # (N,)
            right_padded = torch.arange(steps) < lengths[:, None]  # (N, T)
            if not torch.equal(self.mask, right_padded):
                raise ValueError(
                    "mask must be True on a prefix of each sequence and False after it "
                    "(padding at the end only)."
                )
            if num_sequences > 0 and int(lengths.min()) == 0:
                raise ValueError("Every sequence needs at least one real step; found length 0.")

    @classmethod
    def from_numpy(
        cls,
        inputs: np.ndarray,
        targets: np.ndarray,
        timespans: np.ndarray | None = None,
        mask: np.ndarray | None = None,
    ) -> SequenceData:
        """Build a split from numpy arrays, converting to the dtypes documented above.

        Float targets become a regression split, integer targets a classification split.
        """
        if np.issubdtype(targets.dtype, np.integer):
            target_tensor = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.int64))
        else:
            target_tensor = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))
        return cls(
            inputs=torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)),
            targets=target_tensor,
            timespans=None
            if timespans is None
            else torch.from_numpy(np.ascontiguousarray(timespans, dtype=np.float32)),
            mask=None if mask is None else torch.from_numpy(np.ascontiguousarray(mask, dtype=bool)),
        )

    def __len__(self) -> int:
        return self.inputs.shape[0]

    @property
    def num_steps(self) -> int:
        """Padded sequence length ``T``."""
        return self.inputs.shape[1]

    @property
    def lengths(self) -> torch.Tensor:
        """``(N,)`` int64 number of real steps of each sequence."""
        if self.mask is None:
            return torch.full((len(self),), self.num_steps, dtype=torch.int64)
        return self.mask.sum(dim=1)

    def dataset(self) -> TensorDataset:
        """Wrap the split as a ``TensorDataset`` of ``(inputs, timespans, mask, targets)``.

        The tuple has the same four fields for every data set: a ``None`` timespans becomes
        all ones and a ``None`` mask becomes all True, so one training loop fits every loader.
        """
        timespans = self.timespans
        if timespans is None:
            timespans = torch.ones(self.inputs.shape[:2], dtype=torch.float32)  # (N, T)
        mask = self.mask
        if mask is None:
            mask = torch.ones(self.inputs.shape[:2], dtype=torch.bool)  # (N, T)
        return TensorDataset(self.inputs, timespans, mask, self.targets)

    def with_timespans_as_feature(self) -> SequenceData:
        """Return a copy whose inputs gain one last feature: the timespan of each step.

        For models that take no elapsed time (LSTM, GRU), this is how they see the irregular
        sampling. Inputs go from ``(N, T, F)`` to ``(N, T, F + 1)``.
        """
        timespans = self.timespans
        if timespans is None:
            timespans = torch.ones(self.inputs.shape[:2], dtype=torch.float32)  # (N, T)
        if self.mask is not None:
            timespans = timespans * self.mask  # padded steps keep all-zero inputs
        inputs = torch.cat([self.inputs, timespans[..., None]], dim=-1)  # (N, T, F + 1)
        return dataclasses.replace(self, inputs=inputs)


@dataclass(frozen=True)
class SequenceSplits:
    """The train, validation and test splits of one data set, with its metadata."""

    train: SequenceData
    valid: SequenceData
    test: SequenceData
    info: DatasetInfo

    def __post_init__(self) -> None:
        for split in SPLITS:
            data = self[split]
            if data.inputs.shape[2] != self.train.inputs.shape[2]:
                raise ValueError(
                    f"Split {split!r} has {data.inputs.shape[2]} input features but train has "
                    f"{self.train.inputs.shape[2]}."
                )
            is_classification = data.targets.dtype == torch.int64
            if is_classification != (self.info.task == "classification"):
                raise ValueError(
                    f"Split {split!r} has {data.targets.dtype} targets, which does not match "
                    f"task={self.info.task!r}."
                )
            if is_classification and len(data) > 0:
                low, high = int(data.targets.min()), int(data.targets.max())
                if low < 0 or high >= self.info.num_classes:
                    raise ValueError(
                        f"Split {split!r} has class indices in [{low}, {high}], outside "
                        f"[0, {self.info.num_classes - 1}]."
                    )
        if self.info.input_names is not None and len(self.info.input_names) != self.input_size:
            raise ValueError(
                f"info.input_names has {len(self.info.input_names)} names for "
                f"{self.input_size} input features."
            )

    def __getitem__(self, split: str) -> SequenceData:
        if split not in SPLITS:
            raise KeyError(f"Unknown split {split!r}; expected one of {SPLITS}.")
        return getattr(self, split)

    @property
    def input_size(self) -> int:
        """Number of input features ``F``."""
        return self.train.inputs.shape[2]

    @property
    def output_size(self) -> int:
        """``F_out`` for regression, the number of classes for classification."""
        if self.info.task == "classification":
            return int(self.info.num_classes)
        return self.train.targets.shape[2]

    def dataset(self, split: str) -> TensorDataset:
        """Return split ``"train"``, ``"valid"`` or ``"test"`` as a ``TensorDataset`` of
        ``(inputs, timespans, mask, targets)`` (see :meth:`SequenceData.dataset`)."""
        return self[split].dataset()

    def with_timespans_as_feature(self) -> SequenceSplits:
        """Return a copy where every split's inputs end with the timespan feature (see
        :meth:`SequenceData.with_timespans_as_feature`)."""
        input_names = self.info.input_names
        if input_names is not None:
            input_names = (*input_names, "timespan")
        return SequenceSplits(
            train=self.train.with_timespans_as_feature(),
            valid=self.valid.with_timespans_as_feature(),
            test=self.test.with_timespans_as_feature(),
            info=dataclasses.replace(self.info, input_names=input_names),
        )


def _check_tensor(name: str, value: object, dtype: torch.dtype, ndim: int) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}.")
    if value.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {value.dtype}.")
    if value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(value.shape)}.")
