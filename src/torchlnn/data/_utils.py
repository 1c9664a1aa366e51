"""Helpers shared by the loaders: optional imports, seeded splits and padding."""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np

DATA_EXTRA_HINT = 'pip install "torchlnn[data]"'


def import_optional(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise an ImportError that names the ``data`` extra."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{purpose} needs the optional package {module!r}, which is not installed. "
            f"Install the data extra: {DATA_EXTRA_HINT}"
        ) from error


def check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}.")


def stratified_split(
    labels: np.ndarray, valid_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split indices into train, validation and test sets with the same class proportions.

    Each class is shuffled with a generator seeded by ``seed``. Its first
    ``round(test_fraction * n)`` indices go to test, the next ``round(valid_fraction * n)`` to
    validation and the rest to train. Returns three sorted index arrays.
    """
    check_fraction("valid_fraction", valid_fraction)
    check_fraction("test_fraction", test_fraction)
    if valid_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"valid_fraction + test_fraction must be below 1 to leave training data, got "
            f"{valid_fraction} + {test_fraction}."
        )

    rng = np.random.default_rng(seed)
    train, valid, test = [], [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        num_test = int(round(test_fraction * len(members)))
        num_valid = int(round(valid_fraction * len(members)))
        test.append(members[:num_test])
        valid.append(members[num_test : num_test + num_valid])
        train.append(members[num_test + num_valid :])
    return tuple(np.sort(np.concatenate(part)).astype(np.int64) for part in (train, valid, test))


def pad_sequences(
    sequences: list[np.ndarray], num_steps: int, num_features: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``(T_i, F)`` arrays into ``(N, num_steps, F)`` with zeros after each end.

    Returns the padded float32 array and its ``(N, num_steps)`` bool mask, True at real steps.
    An empty list gives arrays with ``N = 0``.
    """
    padded = np.zeros((len(sequences), num_steps, num_features), dtype=np.float32)
    mask = np.zeros((len(sequences), num_steps), dtype=bool)
    for index, sequence in enumerate(sequences):
        if sequence.shape[0] > num_steps or sequence.shape[1] != num_features:
            raise ValueError(
                f"Sequence {index} has shape {sequence.shape}, which does not fit "
                f"({num_steps}, {num_features})."
            )
        padded[index, : sequence.shape[0]] = sequence
        mask[index, : sequence.shape[0]] = True
    return padded, mask
