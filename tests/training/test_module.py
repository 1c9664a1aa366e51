from __future__ import annotations

import warnings

import lightning as L
import pytest
import torch

from torchlnn.data import load
from torchlnn.training import SequenceDataModule, build_sequence_model
from torchlnn.training.module import classification_task, regression_task


def run_test(module, datamodule):
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        return trainer.test(module, datamodule=datamodule, verbose=False)[0]


@pytest.mark.parametrize("batch_size", [7, 40])
def test_mse_is_exact_for_any_batch_size(batch_size):
    torch.manual_seed(0)
    model = build_sequence_model("gru", 17, 17, 8)
    datamodule = SequenceDataModule("halfcheetah", batch_size=batch_size, max_samples=40)
    metrics = run_test(regression_task(model), datamodule)

    test = datamodule.prepared_splits().test
    with torch.no_grad():
        expected = ((model(test.inputs) - test.targets) ** 2).mean()
    assert metrics["test_mse"] == pytest.approx(float(expected), rel=1e-5)
    assert metrics["test_loss"] == pytest.approx(float(expected), rel=1e-5)


def test_masked_mse_ignores_padding():
    from torchlnn.training.module import masked_mse

    prediction = torch.zeros(2, 3, 1)
    target = torch.tensor([[[1.0], [1.0], [9.0]], [[2.0], [9.0], [9.0]]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert masked_mse(prediction, target, mask).item() == pytest.approx((1 + 1 + 4) / 3)


def test_binary_accuracy_counts_samples():
    torch.manual_seed(0)
    splits = load("xor", num_train=16, num_valid=16, num_test=30)
    model = build_sequence_model("lstm", 1, 1, 4)
    datamodule = SequenceDataModule(splits=splits, batch_size=8)
    metrics = run_test(classification_task(model), datamodule)

    test = splits.test
    with torch.no_grad():
        outputs = model(test.inputs)
    last = test.mask.sum(dim=1) - 1
    logits = outputs[torch.arange(30), last, 0]
    expected = ((logits > 0).long() == test.targets).float().mean()
    assert metrics["test_accuracy"] == pytest.approx(float(expected))


def test_invalid_optimiser_settings_raise():
    model = build_sequence_model("gru", 2, 1, 3)
    with pytest.raises(ValueError, match="optimizer"):
        regression_task(model, optimizer="sgd")
    with pytest.raises(ValueError, match="lr_decay"):
        regression_task(model, lr_decay=1.5)
