from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import torch

from torchlnn.data import load_halfcheetah
from torchlnn.data.halfcheetah import cut_windows, load_halfcheetah_traces


@pytest.fixture(scope="module")
def cheetah():
    return load_halfcheetah()


def _mse(prediction: np.ndarray, target: np.ndarray) -> float:
    return float(np.mean((prediction.astype(np.float64) - target.astype(np.float64)) ** 2))


def test_package_ships_traces_and_notice():
    folder = resources.files("torchlnn.data").joinpath("halfcheetah")
    names = {entry.name for entry in folder.iterdir()}
    assert {f"trace_{i:04d}.npy" for i in range(31)} <= names
    assert {"LICENSE.md", "README.md"} <= names
    assert "Apache License" in folder.joinpath("LICENSE.md").read_text()


def test_traces_shape_and_order():
    traces = load_halfcheetah_traces()
    assert len(traces) == 31
    assert all(trace.shape == (1000, 17) and trace.dtype == np.float64 for trace in traces)


def test_split_shapes(cheetah):
    assert cheetah.train.inputs.shape == (970, 32, 17)
    assert cheetah.valid.inputs.shape == (485, 32, 17)
    assert cheetah.test.inputs.shape == (970, 32, 17)
    assert cheetah.train.targets.shape == (970, 32, 17)
    assert cheetah.train.timespans is None
    assert cheetah.train.mask is None
    assert cheetah.info.task == "regression"


def test_windows_come_from_the_paper_traces(cheetah):
    traces = load_halfcheetah_traces()
    # 97 windows per trace; the first window of each split starts its first trace.
    for split, first_trace in (("valid", 0), ("test", 5), ("train", 15)):
        data = cheetah[split]
        expected = torch.from_numpy(traces[first_trace][:32].astype(np.float32))
        assert torch.equal(data.inputs[0], expected)
        second = torch.from_numpy(traces[first_trace][10:42].astype(np.float32))
        assert torch.equal(data.inputs[1], second)
        next_trace = torch.from_numpy(traces[first_trace + 1][:32].astype(np.float32))
        assert torch.equal(data.inputs[97], next_trace)
    last_train = torch.from_numpy(traces[24][960:992].astype(np.float32))
    assert torch.equal(cheetah.train.inputs[-1], last_train)


def test_targets_are_shifted_inputs(cheetah):
    assert torch.equal(cheetah.train.targets[:, :-1], cheetah.train.inputs[:, 1:])
    traces = load_halfcheetah_traces()
    assert torch.equal(
        cheetah.test.targets[0, -1], torch.from_numpy(traces[5][32].astype(np.float32))
    )


def test_cut_windows_bound():
    trace = np.arange(41.0)[:, None]
    inputs, targets = cut_windows(trace, window=10, stride=10)
    # Starts stay strictly below 41 - 10 - 1 = 30, so the window at 30 that would still
    # fit (targets up to step 40) is left out, as in the LTC paper's script.
    assert inputs[:, 0, 0].tolist() == [0, 10, 20]
    assert inputs[-1, :, 0].tolist() == list(range(20, 30))
    assert targets[-1, :, 0].tolist() == list(range(21, 31))


def test_sanity_references(cheetah):
    """The simple baselines of the data set's notice must come out on this split."""
    train_x = cheetah.train.inputs.numpy().reshape(-1, 17)
    train_y = cheetah.train.targets.numpy().reshape(-1, 17)
    test_x = cheetah.test.inputs.numpy().reshape(-1, 17)
    test_y = cheetah.test.targets.numpy().reshape(-1, 17)

    repeat_last = _mse(test_x, test_y)
    training_mean = _mse(np.broadcast_to(train_y.mean(axis=0), test_y.shape), test_y)

    design = np.hstack([train_x, np.ones((len(train_x), 1))]).astype(np.float64)
    weights, *_ = np.linalg.lstsq(design, train_y.astype(np.float64), rcond=None)
    linear = _mse(np.hstack([test_x, np.ones((len(test_x), 1))]) @ weights, test_y)

    assert repeat_last == pytest.approx(62.9, abs=0.05)
    assert training_mean == pytest.approx(17.5, abs=0.05)
    assert linear == pytest.approx(3.43, abs=0.005)


def test_invalid_window():
    with pytest.raises(ValueError, match="window must be below 999"):
        load_halfcheetah(window=999)
    with pytest.raises(ValueError, match="must be positive"):
        load_halfcheetah(stride=0)
