from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch.utils.data import DataLoader

import torchlnn.data
from torchlnn.data import SequenceSplits, available_datasets, load


def test_available_names():
    assert available_datasets() == (
        "digits",
        "halfcheetah",
        "mujoco-halfcheetah",
        "mujoco-walker2d",
        "uea",
        "xor",
    )


def test_unknown_name_lists_names():
    with pytest.raises(ValueError, match="Unknown data set 'mnist'; available: digits, "):
        load("mnist")


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("halfcheetah", {}),
        ("xor", {"num_train": 64, "num_valid": 8, "num_test": 8}),
        ("xor", {"encoding": "dense", "num_train": 64, "num_valid": 8, "num_test": 8}),
        ("digits", {}),
        ("uea", {"dataset": "JapaneseVowels"}),
    ],
)
def test_loaders_feed_a_dataloader(name, kwargs):
    splits = load(name, **kwargs)
    assert isinstance(splits, SequenceSplits)
    loader = DataLoader(splits.dataset("train"), batch_size=8, shuffle=False)
    inputs, timespans, mask, targets = next(iter(loader))
    assert inputs.shape == (8, splits.train.num_steps, splits.input_size)
    assert timespans.shape == mask.shape == (8, splits.train.num_steps)
    assert inputs.dtype == timespans.dtype == torch.float32
    assert mask.dtype == torch.bool
    if splits.info.task == "classification":
        assert targets.shape == (8,)
        assert targets.dtype == torch.int64
    else:
        assert targets.shape == (8, splits.train.num_steps, splits.output_size)


def test_mujoco_through_registry(mujoco_available):
    splits = load("mujoco-halfcheetah", num_rollouts=3, rollout_steps=40, window=8, progress=False)
    assert splits.info.details["env_id"] == "HalfCheetah-v5"


def test_import_is_lazy():
    code = (
        "import sys, torchlnn.data; "
        "print(sorted(m for m in ('sklearn', 'aeon', 'gymnasium', 'mujoco') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_missing_extra_names_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "aeon.datasets", None)
    with pytest.raises(ImportError, match=r'pip install "torchlnn\[data\]"'):
        torchlnn.data.load_uea()
