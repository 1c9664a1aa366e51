from __future__ import annotations

import numpy as np
import pytest
import torch

from torchlnn.data import available_uea_datasets, load_uea

aeon_datasets = pytest.importorskip("aeon.datasets", reason="needs the data extra")


@pytest.fixture(scope="module")
def vowels():
    return load_uea("JapaneseVowels")


def test_bundled_problems_listed():
    names = available_uea_datasets()
    assert "JapaneseVowels" in names
    assert "BasicMotions" in names
    assert "JapaneseVowels_eq" not in names


def test_japanese_vowels_shapes(vowels):
    assert len(vowels.train) + len(vowels.valid) == 270
    assert len(vowels.test) == 370
    assert vowels.train.inputs.shape[1:] == (29, 12)
    assert vowels.info.num_classes == 9
    lengths = torch.cat([vowels[split].lengths for split in ("train", "valid", "test")])
    assert lengths.min().item() == 7
    assert lengths.max().item() == 29
    assert vowels.train.timespans is None


def test_padding_is_zero(vowels):
    padded = ~vowels.test.mask
    assert bool(padded.any())
    assert bool(torch.all(vowels.test.inputs[padded] == 0.0))


def test_standardised_with_training_statistics(vowels):
    real = vowels.train.inputs[vowels.train.mask]  # (steps, 12)
    assert torch.allclose(real.mean(dim=0), torch.zeros(12), atol=1e-5)
    assert torch.allclose(real.std(dim=0, unbiased=False), torch.ones(12), atol=1e-4)


def test_values_match_aeon_loader():
    splits = load_uea("JapaneseVowels", standardize=False)
    series, labels = aeon_datasets.load_japanese_vowels(split="test")
    for row in (0, 100, 369):
        length = series[row].shape[1]
        expected = torch.from_numpy(series[row].T.astype(np.float32))
        assert torch.equal(splits.test.inputs[row, :length], expected)
        assert splits.test.lengths[row].item() == length
    assert splits.test.targets.tolist() == [int(label) - 1 for label in labels]


def test_basic_motions_equal_length():
    splits = load_uea("BasicMotions", standardize=False)
    assert splits.train.mask is None
    assert splits.test.inputs.shape == (40, 100, 6)
    assert (len(splits.train), len(splits.valid)) == (32, 8)
    assert torch.bincount(splits.valid.targets).tolist() == [2, 2, 2, 2]
    series, labels = aeon_datasets.load_basic_motions(split="test")
    assert torch.equal(splits.test.inputs[3], torch.from_numpy(series[3].T.astype(np.float32)))
    names = splits.info.class_names
    assert [names[i] for i in splits.test.targets.tolist()] == list(labels)


def test_validation_split_seeded():
    first = load_uea("JapaneseVowels", seed=1)
    second = load_uea("JapaneseVowels", seed=1)
    other = load_uea("JapaneseVowels", seed=2)
    assert torch.equal(first.valid.inputs, second.valid.inputs)
    assert not torch.equal(first.valid.inputs, other.valid.inputs)
    assert torch.equal(first.test.targets, other.test.targets)


def test_unknown_problem_lists_bundled():
    with pytest.raises(ValueError, match="not bundled with aeon.*JapaneseVowels"):
        load_uea("CharacterTrajectories")
