from __future__ import annotations

import numpy as np
import pytest

from torchlnn.data._events import change_events


def _encode(sequence: list[int], close_last: bool, pad_size: int = 8):
    values, timespans, mask, count = change_events(
        np.array([sequence]), np.array([len(sequence)]), pad_size=pad_size, close_last=close_last
    )
    real = mask[0]
    return values[0][real].tolist(), timespans[0][real].tolist(), int(count[0])


def _reference(sequence: list[int], close_last: bool) -> tuple[list[float], list[float]]:
    """Walk the sequence step by step, counting steps since the last event."""
    values, timespans = [], []
    previous_value, since_event = None, 0
    for step, value in enumerate(sequence):
        since_event += 1
        is_last = step == len(sequence) - 1
        if value != previous_value or (close_last and is_last):
            values.append(float(value))
            timespans.append(float(since_event))
            since_event = 0
        previous_value = value
    return values, timespans


@pytest.mark.parametrize(
    ("sequence", "close_last", "values", "timespans"),
    [
        ([0, 0, 1, 1, 1], True, [0, 1, 1], [1, 2, 2]),
        ([0, 0, 1, 1, 1], False, [0, 1], [1, 2]),
        ([1, 0, 1, 0], True, [1, 0, 1, 0], [1, 1, 1, 1]),
        ([1, 1, 1, 1], True, [1, 1], [1, 3]),
        ([1, 1, 1, 1], False, [1], [1]),
        ([0], True, [0], [1]),
        ([1, 0, 0, 0, 0, 0, 1], False, [1, 0, 1], [1, 1, 5]),
    ],
)
def test_hand_made_sequences(sequence, close_last, values, timespans):
    got_values, got_timespans, count = _encode(sequence, close_last)
    assert got_values == values
    assert got_timespans == timespans
    assert count == len(values)


def test_matches_step_by_step_reference():
    rng = np.random.default_rng(3)
    values = rng.integers(0, 3, size=(200, 12))
    lengths = rng.integers(1, 13, size=200)
    for close_last in (True, False):
        events, timespans, mask, _ = change_events(
            values, lengths, pad_size=12, close_last=close_last
        )
        for row in range(200):
            expected = _reference(values[row, : lengths[row]].tolist(), close_last)
            assert events[row][mask[row]].tolist() == expected[0]
            assert timespans[row][mask[row]].tolist() == expected[1]


def test_ignores_values_after_length():
    values = np.array([[0, 1, 1, 0, 1, 0], [0, 1, 1, 1, 1, 1]])
    events, timespans, mask, _ = change_events(
        values, np.array([3, 3]), pad_size=6, close_last=True
    )
    assert np.array_equal(events[0], events[1])
    assert np.array_equal(timespans[0], timespans[1])
    assert mask[0].tolist() == [True, True, True, False, False, False]


def test_padding_values():
    events, timespans, mask, _ = change_events(
        np.array([[1, 1]]), np.array([2]), pad_size=5, close_last=False
    )
    assert events.shape == (1, 5)
    assert mask[0].tolist() == [True, False, False, False, False]
    assert events[0, 1:].tolist() == [0.0] * 4
    assert timespans[0, 1:].tolist() == [1.0] * 4


def test_truncation_counts_all_events():
    events, timespans, mask, count = change_events(
        np.array([[0, 1, 0, 1, 0, 1]]), np.array([6]), pad_size=4, close_last=False
    )
    assert count.tolist() == [6]
    assert mask.tolist() == [[True] * 4]
    assert events[0].tolist() == [0.0, 1.0, 0.0, 1.0]


def test_rejects_invalid_lengths():
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 3\]"):
        change_events(np.zeros((1, 3), dtype=int), np.array([0]), pad_size=3, close_last=True)
    with pytest.raises(ValueError, match="pad_size must be at least 1"):
        change_events(np.zeros((1, 3), dtype=int), np.array([3]), pad_size=0, close_last=True)
