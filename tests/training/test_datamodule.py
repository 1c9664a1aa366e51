from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from torchlnn.data import load
from torchlnn.training.datamodule import SequenceDataModule, SplitsDataModule


def batches(world_size: int, rank: int, batch_size: int, epoch: int, n: int = 24):
    dataset = TensorDataset(torch.arange(n))
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=5)
    sampler.set_epoch(epoch)
    return [batch[0].tolist() for batch in DataLoader(dataset, batch_size, sampler=sampler)]


def test_global_batch_is_union_of_rank_batches():
    for epoch in (0, 3):
        single = batches(1, 0, 8, epoch)
        rank0 = batches(2, 0, 4, epoch)
        rank1 = batches(2, 1, 4, epoch)
        assert len(single) == len(rank0) == len(rank1) == 3
        for whole, first, second in zip(single, rank0, rank1):
            assert sorted(whole) == sorted(first + second)


def test_training_order_depends_on_epoch_only():
    assert batches(1, 0, 8, epoch=2) == batches(1, 0, 8, epoch=2)
    assert batches(1, 0, 8, epoch=2) != batches(1, 0, 8, epoch=3)


def test_xor_preparation():
    splits = load("xor", num_train=20, num_valid=8, num_test=8)
    module = SequenceDataModule(
        splits=splits,
        batch_size=4,
        timespan_scale=1 / 32,
        timespans_as_feature=True,
        max_samples=10,
    )
    module.setup()
    inputs, timespans, mask, targets = module.datasets["train"].tensors
    assert inputs.shape == (10, 32, 2)
    assert module.input_size == 2
    assert module.output_size == 2
    assert torch.allclose(timespans, splits.train.timespans[:10] / 32)
    # the feature is the scaled timespan at real steps and 0 at padding
    assert torch.allclose(inputs[..., 1], (splits.train.timespans[:10] / 32) * mask)
    assert len(module.datasets["valid"]) == 8


def test_loader_yields_the_four_fields():
    module = SequenceDataModule("halfcheetah", batch_size=5, max_samples=12)
    module.setup()
    inputs, timespans, mask, targets = next(iter(module.train_dataloader()))
    assert inputs.shape == (5, 32, 17)
    assert targets.shape == (5, 32, 17)
    assert bool(mask.all())
    assert bool((timespans == 1).all())


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="name or loaded splits"):
        SequenceDataModule()
    with pytest.raises(ValueError, match="batch_size"):
        SplitsDataModule(dict, batch_size=0)
    with pytest.raises(ValueError, match="timespan_scale"):
        SequenceDataModule("xor", timespan_scale=0.0)


def test_lightning_sets_the_sampler_epoch(monkeypatch):
    import warnings

    import lightning as L

    from torchlnn.training import build_sequence_model, regression_task

    epochs = []
    original = DistributedSampler.set_epoch

    def record(self, epoch):
        epochs.append(epoch)
        original(self, epoch)

    monkeypatch.setattr(DistributedSampler, "set_epoch", record)
    datamodule = SequenceDataModule("halfcheetah", batch_size=8, max_samples=16)
    module = regression_task(build_sequence_model("gru", 17, 17, 4))
    trainer = L.Trainer(
        max_epochs=3,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        trainer.fit(module, datamodule=datamodule)
    assert epochs == [0, 1, 2]
