"""Argument checks and example inputs shared by every export function."""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from ._step import StepModule, check_exportable, sequence_layout, shape_text

FORMS = ("step", "sequence")

# Example sizes used to trace or export. Batch 2 and 3 steps avoid the sizes 0 and 1, which
# torch.export would specialise; both axes stay dynamic in the exported graphs.
EXAMPLE_BATCH = 2
EXAMPLE_STEPS = 3


def check_form(form: str, owner: str) -> str:
    """Return ``form`` if it is "step" or "sequence", else raise ValueError."""
    if form not in FORMS:
        raise ValueError(
            f"{owner}: form must be 'step' (one step, state in and state out) or 'sequence' "
            f"(a whole sequence with a dynamic number of steps), got {form!r}."
        )
    return form


def check_output_path(path: str | os.PathLike, owner: str) -> Path:
    """Return ``path`` as a Path if a file can be written there, else raise a clear OSError."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{owner}: path must be a str or os.PathLike, got {type(path).__name__}.")
    path = Path(os.fspath(path)).expanduser()
    folder = path.absolute().parent
    if path.is_dir():
        raise IsADirectoryError(
            f"{owner}: cannot write {str(path)!r} because it is a directory. Give a file path "
            f"inside it instead."
        )
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{owner}: cannot write {str(path)!r} because the folder {str(folder)!r} does not "
            f"exist. Create it first."
        )
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise PermissionError(
            f"{owner}: cannot write {str(path)!r}: permission denied. Choose a writable folder."
        )
    return path


def check_output_folder(folder: str | os.PathLike, owner: str) -> Path:
    """Return ``folder`` as a Path if files can be written in it, else raise a clear OSError."""
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(
            f"{owner}: the output folder must be a str or os.PathLike, got {type(folder).__name__}."
        )
    folder = Path(os.fspath(folder)).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{owner}: the output folder {str(folder)!r} does not exist or is not a folder. "
            f"Create it first."
        )
    if not os.access(folder, os.W_OK):
        raise PermissionError(
            f"{owner}: cannot write in {str(folder)!r}: permission denied. Choose a writable "
            f"folder."
        )
    return folder


def frozen_copy(model: nn.Module) -> nn.Module:
    """Return a deep copy of ``model`` in eval mode with gradients off, leaving ``model`` as is.

    Eval mode matters for a CfC backbone with dropout: a traced graph must not sample masks.
    """
    copied = copy.deepcopy(model).eval()
    for parameter in copied.parameters():
        parameter.requires_grad_(False)
    return copied


def build_step(
    model: nn.Module, encoder: nn.Module | None, owner: str
) -> tuple[StepModule, bool, bool]:
    """Return a frozen ``StepModule`` for export and the layer's (batch_first, return_sequences)."""
    check_exportable(model, owner)
    batch_first, return_sequences = sequence_layout(model)
    model = frozen_copy(model)
    encoder = frozen_copy(encoder) if encoder is not None else None
    return StepModule(model, encoder), batch_first, return_sequences


def example_inputs(
    step: StepModule,
    form: str,
    batch_first: bool,
    observation_shape: tuple[int, ...] | None,
    owner: str,
) -> tuple[Tensor, Tensor, Tensor]:
    """Return random ``(x, state, dt)`` to trace ``step`` in ``form``, checked by running it once.

    ``observation_shape`` is the shape of one observation without the batch axis; it defaults
    to ``(I,)`` and is required with an encoder.
    """
    if observation_shape is None:
        if step.encoder is not None:
            raise ValueError(
                f"{owner}: with an encoder, pass observation_shape, the shape of one "
                f"observation without the batch axis (e.g. (3, 66, 200) for camera frames)."
            )
        observation_shape = (step.input_size,)
    observation_shape = tuple(int(size) for size in observation_shape)
    if step.encoder is None and observation_shape != (step.input_size,):
        raise ValueError(
            f"{owner}: the model reads {step.input_size} input features, so observation_shape "
            f"must be ({step.input_size},), got {shape_text(observation_shape)}. Pass an encoder "
            f"for observations of another shape."
        )

    reference = next(step.cell.parameters())
    options = {"device": reference.device, "dtype": reference.dtype}
    generator = torch.Generator().manual_seed(0)
    batch, steps = EXAMPLE_BATCH, EXAMPLE_STEPS
    x = torch.randn((batch, *observation_shape), generator=generator).to(**options)
    state = step.initial_state(batch)
    dt = torch.ones(batch, 1, **options)

    with torch.no_grad():
        encoded = step.encoder(x) if step.encoder is not None else x
    if encoded.shape != (batch, step.input_size):
        raise ValueError(
            f"{owner}: the encoder maps observations {shape_text((batch, *observation_shape))} "
            f"to {shape_text(encoded.shape)}, but the liquid cell expects (B, {step.input_size})."
        )
    if form == "step":
        return x, state, dt

    # (B, T, ...) batch-first or (T, B, ...) time-major, like the layer's own input.
    x = torch.randn((batch, steps, *observation_shape), generator=generator).to(**options)
    dt = torch.ones(batch, steps, 1, **options)
    if not batch_first:
        x, dt = x.transpose(0, 1).contiguous(), dt.transpose(0, 1).contiguous()
    return x, state, dt


@contextlib.contextmanager
def quiet_exporter_warnings() -> Iterator[None]:
    """Silence the deprecation notices PyTorch 2.13 raises from its own tracing internals.

    ``torch.jit.trace`` and ``torch.jit.script`` warn that TorchScript is deprecated, and the
    ONNX exporter triggers FutureWarnings in PyTorch's pytree code. Neither is about the user's
    model; other warnings (a TracerWarning about a wrong trace, for instance) still show.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\..*")
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
        warnings.filterwarnings("ignore", category=FutureWarning)
        # Dynamo reads .grad of every tensor it wraps, which warns for non-leaf tensors.
        warnings.filterwarnings("ignore", message=r"The \.grad attribute of a Tensor")
        yield
