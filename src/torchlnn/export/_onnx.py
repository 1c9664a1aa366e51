"""ONNX export through torch.export: one step, or whole sequences with a dynamic time axis."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from ._checks import check_output_path, quiet_exporter_warnings
from ._program import export_program
from ._step import sequence_layout

# Names of the graph inputs and outputs, per form, in call order.
ONNX_NAMES = {
    "step": (("x", "state", "dt"), ("output", "new_state")),
    "sequence": (("x", "state", "timespans"), ("output", "final_state")),
}


@contextlib.contextmanager
def _quiet_onnx_logging() -> Iterator[None]:
    """Hide the exporter's notices that torchvision operators are not registered."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _tidy_onnx_file(path: Path, form: str, batch_first: bool) -> None:
    """Name the symbolic axes "batch" and "steps", drop unread initializers and debug notes.

    The exporter calls the axes ``s12`` and the like. The names are only labels for readers
    and tools, because ONNX runtimes accept any size for a symbolic axis whatever its name.
    Every occurrence is renamed, in subgraphs too, so the shapes stay consistent. The exporter also
    leaves unused constants in the Scan body, which ONNX Runtime reports with a warning for
    each when it loads the file, and attaches to every node its Python stack trace, which
    makes up most of the file and contains local paths.
    """
    import onnx

    model = onnx.load(os.fspath(path))
    x_dims = model.graph.input[0].type.tensor_type.shape.dim
    axes = (
        {"batch": 0}
        if form == "step"
        else ({"batch": 0, "steps": 1} if batch_first else {"steps": 0, "batch": 1})
    )
    renames = {x_dims[axis].dim_param: label for label, axis in axes.items()}
    renames.pop("", None)

    def rename(graph: onnx.GraphProto) -> None:
        for value in (*graph.input, *graph.output, *graph.value_info):
            del value.metadata_props[:]
            for dim in value.type.tensor_type.shape.dim:
                if dim.dim_param in renames:
                    dim.dim_param = renames[dim.dim_param]
        for node in graph.node:
            del node.metadata_props[:]
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    rename(attribute.g)

    def names_read(graph: onnx.GraphProto) -> set[str]:
        names = {value.name for value in graph.output}
        for node in graph.node:
            names.update(node.input)
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    names |= names_read(attribute.g)
        return names

    def drop_unused_initializers(graph: onnx.GraphProto) -> None:
        read = names_read(graph)
        kept = [tensor for tensor in graph.initializer if tensor.name in read]
        del graph.initializer[:]
        graph.initializer.extend(kept)
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    drop_unused_initializers(attribute.g)

    rename(model.graph)
    drop_unused_initializers(model.graph)
    onnx.save(model, os.fspath(path))


def to_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    form: str = "sequence",
    encoder: nn.Module | None = None,
    observation_shape: tuple[int, ...] | None = None,
    opset_version: int | None = None,
) -> Path:
    """Export a torchlnn layer or cell to an ONNX file, valid at every sequence length.

    The model goes through ``torch.export`` first (see ``to_exported_program``) and then
    through PyTorch's ONNX exporter, so the sequence's loop becomes an ONNX ``Scan`` node. The
    batch and time axes stay symbolic, so an ONNX runtime accepts any batch size and any
    number of steps. These symbolic axes are named "batch" and "steps" in the file. The weights
    are stored inside the one ``.onnx`` file.

    Inputs and outputs, by name:

    * form "step": ``x`` (B, I), ``state`` (B, S), ``dt`` (B, 1) -> ``output`` (B, O),
      ``new_state`` (B, S).
    * form "sequence": ``x`` (B, T, I), ``state`` (B, S), ``timespans`` (B, T, 1) -> ``output``
      (B, T, O), or (B, O) without ``return_sequences``, and ``final_state`` (B, S); time-major
      (T, B, ...) when the layer has ``batch_first=False``.

    Args:
        model: a ``torchlnn.LTC`` or ``torchlnn.CfC`` layer, or a cell (copied, eval mode).
        path: the ``.onnx`` file to write.
        form: "sequence" or "step".
        encoder: an optional per-step module applied to each observation first.
        observation_shape: the shape of one observation without the batch axis; required with
            an encoder.
        opset_version: the ONNX opset; PyTorch's default when None.

    Returns:
        ``path`` as a ``pathlib.Path``.

    Raises:
        ValueError: an option no exported graph can represent (the adaptive solver), a wrong
            ``form`` or ``observation_shape``.
        OSError: ``path`` cannot be written.
        ImportError: the ``onnx`` or ``onnxscript`` package is missing (``pip install
            "torchlnn[export]"``).
    """
    owner = "to_onnx"
    path = check_output_path(path, owner)
    for package in ("onnx", "onnxscript"):
        try:
            __import__(package)
        except ImportError as error:
            raise ImportError(
                f"{owner} needs the '{package}' package. Install the export extra: "
                f'pip install "torchlnn[export]".'
            ) from error

    program = export_program(model, form, encoder, observation_shape, owner)
    batch_first, _ = sequence_layout(model)
    input_names, output_names = ONNX_NAMES[form]
    with quiet_exporter_warnings(), _quiet_onnx_logging():
        torch.onnx.export(
            program,
            f=os.fspath(path),
            dynamo=True,
            input_names=list(input_names),
            output_names=list(output_names),
            opset_version=opset_version,
            external_data=False,
            verbose=False,
        )
    _tidy_onnx_file(path, form, batch_first)
    return path
