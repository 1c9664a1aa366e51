from __future__ import annotations

import pytest
import torch

from torchlnn.data import DatasetInfo, SequenceData, SequenceSplits


def _regression(num_sequences: int = 3, steps: int = 4, features: int = 2) -> SequenceData:
    return SequenceData(
        inputs=torch.randn(num_sequences, steps, features),
        targets=torch.randn(num_sequences, steps, 1),
    )


def _classification(lengths: list[int], steps: int = 4) -> SequenceData:
    mask = torch.arange(steps)[None, :] < torch.tensor(lengths)[:, None]
    inputs = torch.randn(len(lengths), steps, 1) * mask[..., None]
    timespans = torch.where(mask, torch.full((len(lengths), steps), 2.0), torch.ones(()))
    return SequenceData(
        inputs=inputs,
        targets=torch.zeros(len(lengths), dtype=torch.int64),
        timespans=timespans,
        mask=mask,
    )


def _info(task: str = "classification", num_classes: int | None = 2) -> DatasetInfo:
    return DatasetInfo(
        name="toy", task=task, source="test", license="none", num_classes=num_classes
    )


def test_sequence_data_rejects_wrong_dtypes():
    with pytest.raises(TypeError, match="inputs must have dtype torch.float32"):
        SequenceData(
            inputs=torch.zeros(2, 3, 1, dtype=torch.float64),
            targets=torch.zeros(2, dtype=torch.int64),
        )
    with pytest.raises(TypeError, match="targets must be float32"):
        SequenceData(inputs=torch.zeros(2, 3, 1), targets=torch.zeros(2, dtype=torch.int32))
    with pytest.raises(TypeError, match="mask must have dtype torch.bool"):
        SequenceData(
            inputs=torch.zeros(2, 3, 1),
            targets=torch.zeros(2, dtype=torch.int64),
            mask=torch.ones(2, 3),
        )


def test_sequence_data_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"shape \(N, T, F_out\) = \(2, 3, F_out\)"):
        SequenceData(inputs=torch.zeros(2, 3, 1), targets=torch.zeros(2, 4, 1))
    with pytest.raises(ValueError, match=r"shape \(N,\) = \(2,\)"):
        SequenceData(inputs=torch.zeros(2, 3, 1), targets=torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="timespans must have shape"):
        SequenceData(
            inputs=torch.zeros(2, 3, 1),
            targets=torch.zeros(2, dtype=torch.int64),
            timespans=torch.ones(2, 4),
        )


def test_sequence_data_rejects_bad_mask_and_timespans():
    targets = torch.zeros(2, dtype=torch.int64)
    gap = torch.tensor([[True, False, True], [True, True, True]])
    with pytest.raises(ValueError, match="padding at the end only"):
        SequenceData(inputs=torch.zeros(2, 3, 1), targets=targets, mask=gap)
    empty = torch.tensor([[False, False, False], [True, True, True]])
    with pytest.raises(ValueError, match="length 0"):
        SequenceData(inputs=torch.zeros(2, 3, 1), targets=targets, mask=empty)
    with pytest.raises(ValueError, match="timespans must be positive"):
        SequenceData(inputs=torch.zeros(2, 3, 1), targets=targets, timespans=torch.zeros(2, 3))


def test_sequence_data_lengths():
    assert _classification([4, 1, 3]).lengths.tolist() == [4, 1, 3]
    assert _regression(steps=5).lengths.tolist() == [5, 5, 5]


def test_dataset_fills_missing_fields():
    data = _regression(num_sequences=3, steps=4)
    dataset = data.dataset()
    inputs, timespans, mask, targets = dataset[1]
    assert len(dataset) == 3
    assert torch.equal(inputs, data.inputs[1])
    assert torch.equal(timespans, torch.ones(4))
    assert mask.dtype == torch.bool
    assert bool(mask.all())
    assert torch.equal(targets, data.targets[1])


def test_dataset_keeps_given_fields():
    data = _classification([4, 2])
    _, timespans, mask, target = data.dataset()[1]
    assert torch.equal(timespans, data.timespans[1])
    assert mask.tolist() == [True, True, False, False]
    assert target.dtype == torch.int64


def test_timespans_as_feature():
    data = _classification([4, 2])
    extended = data.with_timespans_as_feature()
    assert extended.inputs.shape == (2, 4, 2)
    assert torch.equal(extended.inputs[..., :1], data.inputs)
    assert extended.inputs[1, :, 1].tolist() == [2.0, 2.0, 0.0, 0.0]


def test_splits_access_and_sizes():
    splits = SequenceSplits(
        train=_classification([4, 2]),
        valid=_classification([1]),
        test=_classification([3, 3, 3]),
        info=_info(),
    )
    assert splits["test"] is splits.test
    assert splits.input_size == 1
    assert splits.output_size == 2
    assert len(splits.dataset("valid")) == 1
    with pytest.raises(KeyError, match="Unknown split 'validation'"):
        splits["validation"]


def test_splits_reject_inconsistent_parts():
    with pytest.raises(ValueError, match="does not match task='regression'"):
        SequenceSplits(
            train=_classification([4]),
            valid=_classification([4]),
            test=_classification([4]),
            info=_info("regression", None),
        )
    bad = SequenceData(inputs=torch.zeros(1, 4, 1), targets=torch.tensor([5]))
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        SequenceSplits(train=bad, valid=bad, test=bad, info=_info())
    with pytest.raises(ValueError, match="input features but train has"):
        SequenceSplits(
            train=_regression(features=2),
            valid=_regression(features=3),
            test=_regression(features=2),
            info=_info("regression", None),
        )


def test_dataset_info_validation():
    with pytest.raises(ValueError, match="task must be one of"):
        _info(task="ranking")
    with pytest.raises(ValueError, match="num_classes >= 2"):
        _info(num_classes=None)
    with pytest.raises(ValueError, match="class_names has 3 entries"):
        DatasetInfo(
            name="toy",
            task="classification",
            source="",
            license="",
            num_classes=2,
            class_names=("a", "b", "c"),
        )
