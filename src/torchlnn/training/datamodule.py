"""LightningDataModules over ``torchlnn.data``, with shuffling that survives a resume.

Training batches come from a ``DistributedSampler`` in every run, single-process included.
Its order in epoch ``e`` is ``torch.randperm(N)`` drawn from a generator seeded with
``seed + e``, and process ``r`` of ``W`` takes positions ``r, r + W, r + 2W, ...``. Two
consequences:

- a resumed run gets the same batches as an uninterrupted one, because the order depends only
  on the seed and the epoch (Lightning calls ``set_epoch`` every epoch);
- batch ``i`` of a single-process run with batch size ``W * b`` holds exactly the samples of
  the ``W`` batches ``i`` of a ``W``-process DDP run with batch size ``b``, when ``N`` is a
  multiple of ``W`` (otherwise the sampler repeats ``W - N mod W`` samples to even out the
  processes).

Validation and test batches are not split across processes: every process evaluates the
whole split in order. Evaluation is repeated on each device, but its metrics are exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from torchlnn.data import SequenceSplits, load


class SplitsDataModule(L.LightningDataModule):
    """Serve the train, valid and test datasets of any data as Lightning expects.

    Args:
        datasets: a callable returning ``{"train": Dataset, "valid": Dataset, "test":
            Dataset}``; called once, in ``setup``, on every process.
        batch_size: samples per batch on each process.
        seed: seed of the training order (see the module docstring).
        num_workers: DataLoader worker processes.
        drop_last: drop the last incomplete training batch.
    """

    def __init__(
        self,
        datasets: Callable[[], dict[str, Dataset]],
        batch_size: int,
        seed: int = 0,
        num_workers: int = 0,
        drop_last: bool = False,
    ):
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
        self._make_datasets = datasets
        self.batch_size = batch_size
        self.seed = int(seed)
        self.num_workers = int(num_workers)
        self.drop_last = bool(drop_last)
        self.datasets: dict[str, Dataset] | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.datasets is None:
            self.datasets = self._make_datasets()
            missing = {"train", "valid", "test"} - set(self.datasets)
            if missing:
                raise ValueError(f"The datasets callable returned no {sorted(missing)} split.")

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        return trainer.world_size, trainer.global_rank

    def train_dataloader(self) -> DataLoader:
        world_size, rank = self._world()
        dataset = self.datasets["train"]
        sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=self.seed
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            drop_last=self.drop_last,
            persistent_workers=self.num_workers > 0,
        )

    def _evaluation_loader(self, split: str) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader("valid")

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader("test")


class SequenceDataModule(SplitsDataModule):
    """A ``torchlnn.data`` data set as a LightningDataModule.

    Batches are ``(inputs, timespans, mask, targets)`` as ``SequenceSplits.dataset`` gives
    them (timespans all ones and mask all True when the data has none).

    Args:
        name: a name for ``torchlnn.data.load`` (ignored when ``splits`` is given).
        batch_size: samples per batch on each process.
        seed: seed of the training order.
        loader_options: keyword arguments for the loader.
        splits: already loaded splits, instead of ``name``.
        timespan_scale: timespans are multiplied by this (the CfC paper's XOR code divides
            them by the pad size, 32).
        timespans_as_feature: append each step's (scaled) timespan to the inputs as one more
            feature, for models that take no elapsed time (LSTM, GRU).
        max_samples: keep only the first ``max_samples`` sequences of each split (for quick
            runs); None keeps all.
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        name: str | None = None,
        batch_size: int = 32,
        seed: int = 0,
        loader_options: dict[str, Any] | None = None,
        splits: SequenceSplits | None = None,
        timespan_scale: float = 1.0,
        timespans_as_feature: bool = False,
        max_samples: int | None = None,
        num_workers: int = 0,
    ):
        if name is None and splits is None:
            raise ValueError("SequenceDataModule needs a data set name or loaded splits.")
        if not timespan_scale > 0:
            raise ValueError(f"timespan_scale must be positive, got {timespan_scale!r}.")
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"max_samples must be None or >= 1, got {max_samples!r}.")
        super().__init__(self._build, batch_size, seed=seed, num_workers=num_workers)
        self.name = name
        self.loader_options = dict(loader_options or {})
        self.splits = splits
        self.timespan_scale = float(timespan_scale)
        self.timespans_as_feature = bool(timespans_as_feature)
        self.max_samples = max_samples

    def load_splits(self) -> SequenceSplits:
        """Load (once) and prepare the splits: scaling, the timespan feature, truncation."""
        if self.splits is None:
            self.splits = load(self.name, **self.loader_options)
        return self.splits

    def prepared_splits(self) -> SequenceSplits:
        """Return the splits as the model receives them (scaled timespans, timespan feature)."""
        import dataclasses

        splits = self.load_splits()
        parts = {}
        for split in ("train", "valid", "test"):
            data = splits[split]
            if self.max_samples is not None:
                data = dataclasses.replace(
                    data,
                    inputs=data.inputs[: self.max_samples],
                    targets=data.targets[: self.max_samples],
                    timespans=None
                    if data.timespans is None
                    else data.timespans[: self.max_samples],
                    mask=None if data.mask is None else data.mask[: self.max_samples],
                )
            if data.timespans is not None and self.timespan_scale != 1.0:
                data = dataclasses.replace(data, timespans=data.timespans * self.timespan_scale)
            parts[split] = data
        prepared = SequenceSplits(info=splits.info, **parts)
        if self.timespans_as_feature:
            prepared = prepared.with_timespans_as_feature()
        return prepared

    def _build(self) -> dict[str, Dataset]:
        prepared = self.prepared_splits()
        return {split: prepared.dataset(split) for split in ("train", "valid", "test")}

    @property
    def input_size(self) -> int:
        """Input features the model receives (one more with ``timespans_as_feature``)."""
        return self.load_splits().input_size + int(self.timespans_as_feature)

    @property
    def output_size(self) -> int:
        """Regression targets per step, or the number of classes."""
        return self.load_splits().output_size

    @property
    def task(self) -> str:
        """``"regression"`` or ``"classification"``."""
        return self.load_splits().info.task
