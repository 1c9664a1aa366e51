from __future__ import annotations

import numpy as np
import pytest
import torch

from torchlnn.data import SequenceData, load_xor
from torchlnn.data.xor import encode_bit_streams, generate_bit_streams


def _decode_events(data: SequenceData, row: int) -> list[int]:
    """Rebuild a bit stream from its events: each event's bit lasts until the next event."""
    real = data.mask[row]
    bits = data.inputs[row, real, 0].long().tolist()
    positions = (torch.cumsum(data.timespans[row, real], dim=0) - 1).long().tolist()
    stream = []
    for k, bit in enumerate(bits):
        end = positions[k + 1] if k + 1 < len(bits) else positions[-1] + 1
        stream.extend([bit] * (end - positions[k]))
    return stream


@pytest.fixture(scope="module")
def full_event_xor():
    return load_xor()


def test_paper_sizes_and_shapes(full_event_xor):
    splits = full_event_xor
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (100_000, 10_000, 10_000)
    assert splits.train.inputs.shape == (100_000, 32, 1)
    assert splits.train.timespans.shape == (100_000, 32)
    assert splits.train.targets.dtype == torch.int64
    assert splits.info.num_classes == 2
    assert splits.info.task == "classification"


def test_lengths_cover_two_to_thirty_one():
    bits, lengths = generate_bit_streams(100_000, seed=5)
    assert bits.shape == (100_000, 31)
    assert lengths.min() == 2
    assert lengths.max() == 31
    counts = np.bincount(lengths)[2:]
    assert len(counts) == 30
    assert counts.min() > 0.9 * 100_000 / 30  # uniform over the 30 lengths


def test_labels_are_parity_and_balanced(full_event_xor):
    bits, lengths = generate_bit_streams(1000, seed=11)
    data = encode_bit_streams(bits, lengths, "event")
    expected = [int(sum(bits[n, : lengths[n]])) % 2 for n in range(1000)]
    assert data.targets.tolist() == expected
    assert abs(full_event_xor.train.targets.float().mean().item() - 0.5) < 0.01


def test_event_encoding_decodes_to_stream():
    bits, lengths = generate_bit_streams(300, seed=2)
    data = encode_bit_streams(bits, lengths, "event")
    for row in range(300):
        assert _decode_events(data, row) == bits[row, : lengths[row]].tolist()
        assert data.timespans[row, data.mask[row]].sum().item() == lengths[row]


def test_event_encoding_hand_made():
    bits = np.array([[0, 0, 1, 1, 1, 0], [1, 0, 1, 0, 1, 0]])
    data = encode_bit_streams(bits, np.array([5, 6]), "event", pad_size=8)
    assert data.inputs[0, :, 0].tolist() == [0, 1, 1, 0, 0, 0, 0, 0]
    assert data.timespans[0].tolist() == [1, 2, 2, 1, 1, 1, 1, 1]
    assert data.mask[0].tolist() == [True] * 3 + [False] * 5
    assert data.inputs[1, :6, 0].tolist() == [1, 0, 1, 0, 1, 0]
    assert data.timespans[1, :6].tolist() == [1] * 6
    assert data.targets.tolist() == [1, 1]


def test_dense_encoding():
    bits = np.array([[1, 1, 0, 1], [0, 1, 0, 0]])
    data = encode_bit_streams(bits, np.array([4, 2]), "dense", pad_size=6)
    assert data.timespans is None
    assert data.inputs[:, :, 0].tolist() == [[1, 1, 0, 1, 0, 0], [0, 1, 0, 0, 0, 0]]
    assert data.lengths.tolist() == [4, 2]
    assert data.targets.tolist() == [1, 1]


def test_dense_and_event_share_streams():
    event = load_xor("event", num_train=500, num_valid=10, num_test=10, seed=4)
    dense = load_xor("dense", num_train=500, num_valid=10, num_test=10, seed=4)
    assert torch.equal(event.train.targets, dense.train.targets)
    for row in range(50):
        length = int(dense.train.lengths[row])
        stream = dense.train.inputs[row, :length, 0].long().tolist()
        assert _decode_events(event.train, row) == stream


def test_same_seed_same_data_and_prefix(full_event_xor):
    small = load_xor(num_train=1000, num_valid=100, num_test=100)
    assert torch.equal(small.train.inputs, full_event_xor.train.inputs[:1000])
    assert torch.equal(small.train.timespans, full_event_xor.train.timespans[:1000])
    assert torch.equal(small.test.targets, full_event_xor.test.targets[:100])
    again = load_xor(num_train=1000, num_valid=100, num_test=100)
    assert torch.equal(small.valid.inputs, again.valid.inputs)


def test_seeds_and_splits_differ():
    first = load_xor(num_train=200, num_valid=200, num_test=200, seed=0)
    second = load_xor(num_train=200, num_valid=200, num_test=200, seed=1)
    assert not torch.equal(first.train.inputs, second.train.inputs)
    assert not torch.equal(first.train.inputs, first.test.inputs)
    assert not torch.equal(first.valid.inputs, first.test.inputs)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="encoding must be one of"):
        load_xor("sparse", num_train=10, num_valid=10, num_test=10)
    with pytest.raises(ValueError, match="pad_size must be at least max_length=31"):
        load_xor(num_train=10, num_valid=10, num_test=10, pad_size=16)
    with pytest.raises(ValueError, match="num_test must be at least 1"):
        load_xor(num_train=10, num_valid=10, num_test=0)
