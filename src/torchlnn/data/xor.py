"""Bit-stream XOR (parity), dense and event-based, as in the CfC paper.

Each sample is a random bit stream whose length is drawn uniformly from
``min_length .. max_length`` (2 to 31 by default). Its label is the parity of the stream,
the XOR of all its bits, which is 1 when the number of ones is odd. The CfC paper (Hasani et
al., Nature Machine Intelligence 2022) uses 100,000 training and 10,000 test streams.

Two encodings of the same streams:

- ``"dense"``: one step per bit. Inputs ``(N, 32, 1)`` hold the bits, ``mask`` marks the real
  steps and ``timespans`` is None (regular sampling).
- ``"event"``: one step per event. A step of the stream is an event when its bit differs from
  the previous bit. The first and last bits of the stream are always events, the last one so
  that the length of the final run of equal bits is known. The event's input is its bit
  and its ``timespans`` entry is the number of stream steps since the previous event (1 for
  the first event, at stream step 0). The timespans of a sample sum to its stream length.
  Example: stream ``0 0 1 1 1`` gives events at steps 0, 2 and 4 with bits ``0 1 1`` and
  timespans ``1 2 2``.

Both encodings pad to ``pad_size`` steps (32) at the end: padded steps hold input 0 and
timespan 1.0, and ``mask`` is False there. A stream of ``L`` bits has at most ``L`` events,
so with ``pad_size >= max_length`` nothing is ever truncated.

The elapsed times are in stream steps (1.0 = one bit). The CfC paper's code divides them by
its pad size before feeding them to the model; do that in the experiment if needed.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from torchlnn.data._events import change_events
from torchlnn.data._types import DatasetInfo, SequenceData, SequenceSplits

ENCODINGS: tuple[str, ...] = ("event", "dense")


def generate_bit_streams(
    num_samples: int,
    seed: int | np.random.SeedSequence,
    min_length: int = 2,
    max_length: int = 31,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw random bit streams and their lengths.

    Sample ``n`` uses row ``n`` of one ``(num_samples, 1 + max_length)`` uniform draw: the
    first number picks the length, the others the bits (1 when below 0.5). The first ``k``
    samples are therefore the same for every ``num_samples >= k`` with the same seed.

    Returns:
        ``bits`` ``(num_samples, max_length)`` int64 (zero after each stream's length) and
        ``lengths`` ``(num_samples,)`` int64.
    """
    if not 1 <= min_length <= max_length:
        raise ValueError(
            f"Stream lengths need 1 <= min_length <= max_length, got {min_length} and {max_length}."
        )
    if num_samples < 0:
        raise ValueError(f"num_samples must be non-negative, got {num_samples}.")

    uniform = np.random.default_rng(seed).random((num_samples, 1 + max_length))
    num_lengths = max_length - min_length + 1
    lengths = min_length + np.floor(uniform[:, 0] * num_lengths).astype(np.int64)  # (N,)
    bits = (uniform[:, 1:] < 0.5).astype(np.int64)  # (N, max_length)
    bits[np.arange(max_length)[None, :] >= lengths[:, None]] = 0
    return bits, lengths


def encode_bit_streams(
    bits: np.ndarray,
    lengths: np.ndarray,
    encoding: Literal["event", "dense"] = "event",
    pad_size: int = 32,
) -> SequenceData:
    """Encode bit streams (see the module docstring) and label them with their parity.

    Args:
        bits: ``(N, L)`` integer array of 0 and 1; entries past a stream's length are ignored.
        lengths: ``(N,)`` stream lengths in ``[1, L]``.
        encoding: ``"event"`` or ``"dense"``.
        pad_size: padded number of steps ``T``, at least ``L``.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}.")
    bits = np.asarray(bits, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    num_samples, width = bits.shape
    if pad_size < width:
        raise ValueError(
            f"pad_size must be at least the stream width {width} so that no stream is "
            f"truncated, got {pad_size}."
        )

    is_real = np.arange(width)[None, :] < lengths[:, None]  # (N, L)
    labels = (bits * is_real).sum(axis=1) % 2  # (N,)

    if encoding == "dense":
        inputs = np.zeros((num_samples, pad_size, 1), dtype=np.float32)
        inputs[:, :width, 0] = bits * is_real
        mask = np.zeros((num_samples, pad_size), dtype=bool)
        mask[:, :width] = is_real
        return SequenceData.from_numpy(inputs, labels, timespans=None, mask=mask)

    event_bits, timespans, mask, _ = change_events(
        bits, lengths, pad_size=pad_size, close_last=True
    )
    return SequenceData.from_numpy(event_bits[..., None], labels, timespans=timespans, mask=mask)


def load_xor(
    encoding: Literal["event", "dense"] = "event",
    *,
    num_train: int = 100_000,
    num_valid: int = 10_000,
    num_test: int = 10_000,
    seed: int = 0,
    min_length: int = 2,
    max_length: int = 31,
    pad_size: int = 32,
) -> SequenceSplits:
    """Generate the bit-stream XOR task (see the module docstring for the encodings).

    The three splits come from independent generators spawned from ``seed``, so the
    training set never depends on the test size and smaller sizes give a prefix of the full
    splits. The CfC paper has no validation set; ``num_valid`` streams are drawn the same way.
    Short streams can occur in several splits, since there are only ``2**L`` streams of
    length ``L``.

    Args:
        encoding: ``"event"`` (the paper's event-based XOR) or ``"dense"``.
        num_train: training streams (100,000 in the paper).
        num_valid: validation streams.
        num_test: test streams (10,000 in the paper).
        seed: seed of the generators.
        min_length: minimum stream length.
        max_length: maximum stream length.
        pad_size: padded number of steps ``T``, at least ``max_length``.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}.")
    if pad_size < max_length:
        raise ValueError(
            f"pad_size must be at least max_length={max_length} so that no stream is "
            f"truncated, got {pad_size}."
        )
    for name, size in (("num_train", num_train), ("num_valid", num_valid), ("num_test", num_test)):
        if size < 1:
            raise ValueError(f"{name} must be at least 1, got {size}.")

    train_seed, valid_seed, test_seed = np.random.SeedSequence(seed).spawn(3)

    def build_split(num_samples: int, split_seed: np.random.SeedSequence) -> SequenceData:
        bits, lengths = generate_bit_streams(num_samples, split_seed, min_length, max_length)
        return encode_bit_streams(bits, lengths, encoding, pad_size)

    info = DatasetInfo(
        name="xor",
        task="classification",
        source="generated by torchlnn.data.xor",
        license="generated data, no third-party license",
        num_classes=2,
        class_names=("even", "odd"),
        input_names=("bit",),
        details={
            "encoding": encoding,
            "num_train": num_train,
            "num_valid": num_valid,
            "num_test": num_test,
            "seed": seed,
            "min_length": min_length,
            "max_length": max_length,
            "pad_size": pad_size,
        },
    )
    return SequenceSplits(
        train=build_split(num_train, train_seed),
        valid=build_split(num_valid, valid_seed),
        test=build_split(num_test, test_seed),
        info=info,
    )
