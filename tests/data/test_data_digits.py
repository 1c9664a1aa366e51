from __future__ import annotations

import numpy as np
import pytest
import torch

from torchlnn.data import SequenceData, load_event_digits
from torchlnn.data.digits import encode_images

load_digits = pytest.importorskip("sklearn.datasets", reason="needs the data extra").load_digits


def _decode_image(data: SequenceData, row: int, num_pixels: int = 64) -> tuple[int, ...]:
    """Rebuild the binary image: each event's value lasts until the next event or the end."""
    real = data.mask[row]
    values = data.inputs[row, real, 0].long().tolist()
    starts = (torch.cumsum(data.timespans[row, real], dim=0) - 1).long().tolist()
    pixels = []
    for k, value in enumerate(values):
        end = starts[k + 1] if k + 1 < len(values) else num_pixels
        pixels.extend([value] * (end - starts[k]))
    return tuple(pixels)


@pytest.fixture(scope="module")
def digits():
    return load_event_digits()


def test_hand_made_image():
    image = np.array([[[0, 9, 9, 0], [0, 0, 16, 16]]])
    events, timespans, mask, count = encode_images(image, threshold=8)
    assert events[0, :, 0].tolist() == [0, 1, 0, 1]
    assert timespans[0].tolist() == [1, 1, 2, 3]
    assert mask[0].all()
    assert count.tolist() == [4]


def test_threshold_is_strict():
    events, _, _, _ = encode_images(np.array([[8, 9]]), threshold=8)
    assert events[0, :, 0].tolist() == [0, 1]


def test_split_sizes_and_shapes(digits):
    sizes = (len(digits.train), len(digits.valid), len(digits.test))
    assert sum(sizes) == 1797
    assert sizes == (1259, 179, 359)
    assert digits.train.inputs.shape == (1259, 29, 1)
    assert digits.test.timespans.shape == (359, 29)
    assert digits.info.num_classes == 10
    assert digits.info.details["max_events"] == 29


def test_splits_are_stratified(digits):
    for split in ("train", "valid", "test"):
        counts = torch.bincount(digits[split].targets, minlength=10)
        share = counts.float() / counts.sum()
        assert bool(torch.all((share - 0.1).abs() < 0.02)), (split, counts)


def test_events_decode_to_thresholded_images(digits):
    images = load_digits().images.reshape(-1, 64)
    thresholded = {tuple(row) for row in (images > 8).astype(int).tolist()}
    decoded = [
        _decode_image(digits[split], row)
        for split in ("train", "valid", "test")
        for row in range(len(digits[split]))
    ]
    assert all(len(image) == 64 for image in decoded)
    assert all(image in thresholded for image in decoded)
    assert len(set(decoded)) > 0.95 * len(thresholded)


def test_timespans_are_elapsed_pixels(digits):
    real = digits.train.mask
    assert bool(torch.all(digits.train.timespans[:, 0] == 1.0))
    elapsed_per_image = (digits.train.timespans * real).sum(dim=1)  # last event step + 1
    assert elapsed_per_image.max().item() <= 64
    assert bool(torch.all(digits.train.timespans[real] == digits.train.timespans[real].round()))
    assert bool(torch.all(digits.train.timespans[~real] == 1.0))
    assert bool(torch.all(digits.train.inputs[~real] == 0.0))


def test_seed_determinism():
    first = load_event_digits(seed=3)
    second = load_event_digits(seed=3)
    other = load_event_digits(seed=4)
    assert torch.equal(first.test.inputs, second.test.inputs)
    assert torch.equal(first.test.targets, second.test.targets)
    assert not torch.equal(first.test.inputs, other.test.inputs)


def test_short_pad_size_warns():
    with pytest.warns(UserWarning, match="more than pad_size=16 events"):
        splits = load_event_digits(pad_size=16)
    assert splits.train.inputs.shape[1] == 16


def test_invalid_threshold():
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 16\)"):
        load_event_digits(threshold=16)
