"""HalfCheetah kinematic traces of the LTC paper, shipped with torchlnn.

31 recorded traces of the MuJoCo HalfCheetah robot, each ``(1000, 17)`` float64, from the
repository raminmh/liquid_time_constant_networks (folder
``experiments_with_ltcs/data/cheetah``, Apache License 2.0; the notice and license ship beside
the files in ``torchlnn/data/halfcheetah/``). :func:`load_halfcheetah` reproduces the protocol
of that repository's ``experiments_with_ltcs/cheetah.py``, which produced the LTC paper's
(Hasani et al., AAAI 2021) HalfCheetah numbers.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from torchlnn.data._types import DatasetInfo, SequenceData, SequenceSplits

NUM_TRACES = 31
TRACE_SHAPE = (1000, 17)

# Trace indices (files sorted by name) of each split, as in the LTC paper's script.
VALID_TRACES = range(0, 5)
TEST_TRACES = range(5, 15)
TRAIN_TRACES = range(15, 25)  # traces 25-30 are not used by the protocol

SOURCE = (
    "raminmh/liquid_time_constant_networks, experiments_with_ltcs/data/cheetah/, commit "
    "4a8a4fa22a91c4067b6944a264819ff30a4aae9d; shipped in torchlnn/data/halfcheetah/"
)


def load_halfcheetah_traces() -> list[np.ndarray]:
    """Load the 31 shipped traces, sorted by file name, each ``(1000, 17)`` float64."""
    folder = resources.files("torchlnn.data").joinpath("halfcheetah")
    names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".npy"))
    if len(names) != NUM_TRACES:
        raise FileNotFoundError(
            f"Expected {NUM_TRACES} HalfCheetah traces (*.npy) in {folder}, found {len(names)}. "
            "The installed package is incomplete; reinstall torchlnn."
        )

    traces = []
    for name in names:
        with folder.joinpath(name).open("rb") as file:
            trace = np.load(file, allow_pickle=False)
        if trace.shape != TRACE_SHAPE:
            raise ValueError(f"Trace {name} has shape {trace.shape}, expected {TRACE_SHAPE}.")
        traces.append(trace)
    return traces


def cut_windows(trace: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut one ``(L, F)`` trace into next-step prediction windows.

    Windows start at steps ``0, stride, 2 * stride, ...`` strictly below ``L - window - 1``.
    This bound comes from the LTC paper's script. It leaves out a window starting at
    ``L - window - 1`` when that is a multiple of ``stride``, although the window would fit. The
    inputs of a window starting at ``s`` are steps ``s .. s + window - 1`` and its targets
    are the same steps shifted one ahead, ``s + 1 .. s + window``.

    Returns inputs and targets, both ``(num_windows, window, F)``.
    """
    starts = range(0, trace.shape[0] - window - 1, stride)
    inputs = np.stack([trace[start : start + window] for start in starts])  # (W, window, F)
    targets = np.stack([trace[start + 1 : start + window + 1] for start in starts])
    return inputs, targets


def load_halfcheetah(window: int = 32, stride: int = 10) -> SequenceSplits:
    """Load the LTC paper's HalfCheetah next-step prediction task.

    Protocol (the defaults reproduce the paper's script exactly):

    - traces sorted by file name; traces 0-4 are validation, 5-14 test, 15-24 training, and
      25-30 are unused;
    - each trace is converted to float32 and cut into windows of ``window`` steps every
      ``stride`` steps (see :func:`cut_windows`). The target of each step is the full
      17-value state one step later;
    - no normalisation.

    With the defaults every trace gives 97 windows: 970 training, 485 validation and 970 test
    windows of shape ``(32, 17)``. Sampling is regular, so ``timespans`` and ``mask`` are None.

    Args:
        window: steps per window ``T``.
        stride: steps between the starts of consecutive windows.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be positive, got {window} and {stride}.")
    if window + 1 >= TRACE_SHAPE[0]:
        raise ValueError(
            f"window must be below {TRACE_SHAPE[0] - 1} so that a trace of {TRACE_SHAPE[0]} "
            f"steps holds one window and its shifted target, got {window}."
        )

    traces = load_halfcheetah_traces()

    def build_split(indices: range) -> SequenceData:
        pairs = [cut_windows(traces[i].astype(np.float32), window, stride) for i in indices]
        inputs = np.concatenate([pair[0] for pair in pairs])  # (N, T, 17)
        targets = np.concatenate([pair[1] for pair in pairs])  # (N, T, 17)
        return SequenceData.from_numpy(inputs, targets)

    info = DatasetInfo(
        name="halfcheetah",
        task="regression",
        source=SOURCE,
        license="Apache-2.0 (LICENSE.md and README.md ship beside the traces)",
        details={
            "window": window,
            "stride": stride,
            "train_traces": list(TRAIN_TRACES),
            "valid_traces": list(VALID_TRACES),
            "test_traces": list(TEST_TRACES),
            "normalisation": None,
        },
    )
    return SequenceSplits(
        train=build_split(TRAIN_TRACES),
        valid=build_split(VALID_TRACES),
        test=build_split(TEST_TRACES),
        info=info,
    )
