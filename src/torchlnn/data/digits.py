"""Event-based sequential digits: scikit-learn's 8x8 digit images as irregular event streams.

This follows the event-based sequential MNIST of the CfC paper (Hasani et al., Nature Machine
Intelligence 2022) on a smaller image set that needs no download. The 1,797 images of
``sklearn.datasets.load_digits`` ship inside scikit-learn. They are a copy of the test set of
the UCI "Optical Recognition of Handwritten Digits" data, 8x8 pixels with values 0..16.

Encoding of one image:

1. threshold every pixel: 1 when its value is above ``threshold`` (8, half the range, as the
   paper thresholds MNIST's 0..255 at 128), else 0;
2. scan the 64 binary pixels row by row, left to right;
3. emit an event at the first pixel and at every pixel whose binary value differs from the
   previous pixel's. The event's input is the new binary value and its ``timespans`` entry is
   the number of pixels since the previous event (1 for the first event, at pixel 0). As in
   the paper's MNIST encoding, the end of the scan emits no event: the final run lasts until
   pixel 64, which every image shares;
4. pad with input 0 and timespan 1.0 at the end; ``mask`` is False on padded steps.

With the default threshold an image gives 13 to 29 events (mean about 20).
"""

from __future__ import annotations

import warnings

import numpy as np

from torchlnn.data._events import change_events
from torchlnn.data._types import DatasetInfo, SequenceData, SequenceSplits
from torchlnn.data._utils import import_optional, stratified_split

IMAGE_SIZE = 8
MAX_PIXEL_VALUE = 16


def encode_images(
    images: np.ndarray, threshold: float = 8.0, pad_size: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Encode images as event sequences (see the module docstring).

    Args:
        images: ``(N, H, W)`` or ``(N, H * W)`` pixel values.
        threshold: a pixel is 1 when its value is strictly above ``threshold``.
        pad_size: number of event slots ``T``; None uses the largest event count among
            ``images``. Images with more events are truncated, with a warning.

    Returns:
        ``events`` ``(N, T, 1)`` float32, ``timespans`` ``(N, T)`` float32, ``mask``
        ``(N, T)`` bool and ``num_events`` ``(N,)`` int64 before truncation.
    """
    images = np.asarray(images)
    if images.ndim not in (2, 3) or len(images) == 0:
        raise ValueError(
            f"images must have shape (N, H, W) or (N, H * W) with N >= 1, got {images.shape}."
        )
    pixels = images.reshape(len(images), -1)  # (N, H * W)
    binary = (pixels > threshold).astype(np.int64)  # (N, H * W)
    lengths = np.full(len(binary), binary.shape[1], dtype=np.int64)

    if pad_size is None:
        _, _, _, num_events = change_events(
            binary, lengths, pad_size=binary.shape[1], close_last=False
        )
        pad_size = int(num_events.max())
    events, timespans, mask, num_events = change_events(
        binary, lengths, pad_size=pad_size, close_last=False
    )

    num_truncated = int(np.sum(num_events > pad_size))
    if num_truncated:
        warnings.warn(
            f"{num_truncated} of {len(images)} images have more than pad_size={pad_size} "
            f"events (up to {int(num_events.max())}); their later events are dropped. Pass "
            "pad_size=None to pad to the longest sequence.",
            stacklevel=2,
        )
    return events[..., None], timespans, mask, num_events


def load_event_digits(
    *,
    threshold: float = 8.0,
    pad_size: int | None = None,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> SequenceSplits:
    """Load scikit-learn's digits as event-based sequences (10 classes).

    Each digit class is split separately (stratified) with a generator seeded by ``seed``:
    with the defaults 1,259 training, 179 validation and 359 test images. Inputs are
    ``(N, T, 1)`` with ``T`` the largest event count over all 1,797 images (29 with the
    default threshold), so the three splits share one ``T``.

    Args:
        threshold: a pixel (0..16) counts as ink when its value is strictly above this.
        pad_size: number of steps ``T``; None pads to the longest event sequence.
        valid_fraction: fraction of each class used for validation.
        test_fraction: fraction of each class used for testing.
        seed: seed of the split.
    """
    if not 0 <= threshold < MAX_PIXEL_VALUE:
        raise ValueError(
            f"threshold must lie in [0, {MAX_PIXEL_VALUE}) so that both pixel values occur, "
            f"got {threshold}."
        )
    sklearn_datasets = import_optional("sklearn.datasets", "The event-based digits data set")
    sklearn = import_optional("sklearn", "The event-based digits data set")

    # load_digits reads a file bundled with scikit-learn; it never downloads.
    digits = sklearn_datasets.load_digits()
    images = digits.images  # (1797, 8, 8), values 0..16
    labels = digits.target.astype(np.int64)  # (1797,)

    events, timespans, mask, num_events = encode_images(images, threshold, pad_size)
    train, valid, test = stratified_split(labels, valid_fraction, test_fraction, seed)

    def build_split(indices: np.ndarray) -> SequenceData:
        return SequenceData.from_numpy(
            events[indices], labels[indices], timespans=timespans[indices], mask=mask[indices]
        )

    info = DatasetInfo(
        name="digits",
        task="classification",
        source=(
            f"sklearn.datasets.load_digits (scikit-learn {sklearn.__version__}): a copy of the "
            "test set of the UCI Optical Recognition of Handwritten Digits data"
        ),
        license="data bundled with scikit-learn (BSD-3-Clause); see its load_digits docs",
        num_classes=10,
        class_names=tuple(str(digit) for digit in range(10)),
        input_names=("pixel",),
        details={
            "threshold": threshold,
            "pad_size": int(events.shape[1]),
            "max_events": int(num_events.max()),
            "valid_fraction": valid_fraction,
            "test_fraction": test_fraction,
            "seed": seed,
            "scan_order": "row-major",
        },
    )
    return SequenceSplits(
        train=build_split(train), valid=build_split(valid), test=build_split(test), info=info
    )
