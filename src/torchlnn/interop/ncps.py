"""Convert trained ncps 1.0.1 PyTorch modules into torchlnn modules with the same outputs.

``from_ncps(module)`` takes an ``ncps.torch`` ``CfC``, ``LTC``, ``CfCCell``, ``WiredCfCCell``
or ``LTCCell`` and returns the torchlnn module that computes the same function (float32
outputs agree to about 1e-6). ncps is not a dependency of torchlnn: this module only reads the
attributes of the object it is given.

What is converted as ncps computes it, not as torchlnn would build it:

* A wired ncps CfC connects each neuron to every neuron of its own layer and leaves the time
  heads dense. The result is a ``WiredCfCCell`` with ``connectivity="ncps"``, which keeps that
  connectivity in its masks, and returns the whole last layer as ncps does.
* The wired CfC's state: ncps orders it by layer (inter, command, motor for an NCP); torchlnn
  uses the wiring's neuron order (motor first). Outputs agree; to carry an ncps state over, use
  ``state_from_ncps`` (and ``state_to_ncps`` for the way back).
* The wiring becomes a plain ``torchlnn.wirings.Wiring`` with ncps's matrices, neuron roles and
  layers: torchlnn's NCP generator draws other synapses for the same seed.
* LTC positivity: torchlnn computes ``C_m``, ``g_leak`` and ``w`` as ``softplus(raw) + 1e-6``.
  The converter takes the values that ncps computes with and stores their inverse. With
  ``implicit_param_constraints=True`` (the ``LTC`` layer default) those are the softplus of
  ncps's parameters; otherwise they are the parameters themselves. With ``False`` the values must be
  non-negative (call ncps's ``apply_weight_constraints()`` first). Values at or below 2e-6,
  zeros included, become 1e-6 (the floor), a difference below float32 precision here.
* Backbone dropout: ncps's dense CfC applies it after the second and later backbone layers
  only (with one layer, not at all). The converted cell has no dropout where ncps had none,
  and otherwise applies ncps's rate after every layer, so training-mode outputs can differ
  while eval-mode outputs agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from torchlnn.cells import CfCCell, LTCCell, WiredCfCCell
from torchlnn.cells._common import POSITIVE_FLOOR, inverse_positive
from torchlnn.layers import LTC, CfC
from torchlnn.wirings import Wiring

_ACTIVATION_NAMES = {
    "LeCun": "lecun_tanh",
    "Tanh": "tanh",
    "ReLU": "relu",
    "GELU": "gelu",
    "SiLU": "silu",
}

# softplus(-60) is about 1e-26, so this raw value gives the floor 1e-6.
_ZERO_RAW = -60.0


def from_ncps(module: nn.Module) -> nn.Module:
    """Return the torchlnn equivalent of an ncps 1.0.1 torch module (see the module docstring).

    Args:
        module: an ``ncps.torch.CfC``, ``LTC``, ``CfCCell``, ``WiredCfCCell`` or ``LTCCell``.

    Returns:
        a ``torchlnn.CfC``, ``LTC``, ``CfCCell``, ``WiredCfCCell`` or ``LTCCell`` in the same
        training mode, on the CPU, in float32.
    """
    converters = {
        "CfC": _convert_cfc_layer,
        "LTC": _convert_ltc_layer,
        "CfCCell": _convert_cfc_cell,
        "WiredCfCCell": _convert_wired_cell,
        "LTCCell": _convert_ltc_cell,
    }
    name = type(module).__name__
    if name not in converters or not type(module).__module__.startswith("ncps."):
        raise TypeError(
            f"from_ncps expects an ncps.torch module (CfC, LTC, CfCCell, WiredCfCCell or "
            f"LTCCell), got {type(module).__module__}.{name}."
        )
    converted = converters[name](module)
    converted.train(module.training)
    return converted


# ---------------------------------------------------------------------------- wirings


def convert_wiring(wiring: Any) -> Wiring:
    """Return a torchlnn ``Wiring`` with the matrices, roles and layers of an ncps wiring."""
    if wiring.input_dim is None:
        raise ValueError("from_ncps: the ncps wiring is not built (it has no input dimension).")
    units = wiring.units
    return Wiring.from_matrices(
        np.asarray(wiring.adjacency_matrix),
        np.asarray(wiring.sensory_adjacency_matrix),
        output_dim=wiring.output_dim,
        neuron_types=[wiring.get_type_of_neuron(i) for i in range(units)],
        layers=[list(wiring.get_neurons_of_layer(i)) for i in range(wiring.num_layers)],
    )


# ---------------------------------------------------------------------------- CfC


def _copy(target: Tensor, source: Tensor) -> None:
    with torch.no_grad():
        target.copy_(source.detach().reshape(target.shape).to(target.dtype))


def _backbone_description(cell: Any) -> tuple[int, int, str, float]:
    linears = [m for m in (cell.backbone or []) if isinstance(m, nn.Linear)]
    activations = [
        type(m).__name__
        for m in (cell.backbone or [])
        if not isinstance(m, (nn.Linear, nn.Dropout))
    ]
    dropouts = [m.p for m in (cell.backbone or []) if isinstance(m, nn.Dropout)]
    units = linears[0].out_features if linears else 128
    activation = _ACTIVATION_NAMES.get(activations[0], None) if activations else "lecun_tanh"
    if activation is None:
        raise ValueError(f"from_ncps: unknown backbone activation {activations[0]}.")
    return len(linears), units, activation, (dropouts[0] if dropouts else 0.0)


def _convert_cfc_cell(cell: Any) -> CfCCell:
    if getattr(cell, "sparsity_mask", None) is not None:
        raise ValueError(
            "from_ncps: this CfCCell has a sparsity mask, so it is one layer of a WiredCfCCell; "
            "convert the WiredCfCCell or the CfC layer that contains it."
        )
    layers, units, activation, dropout = _backbone_description(cell)
    converted = CfCCell(
        cell.input_size,
        cell.hidden_size,
        mode=cell.mode,
        backbone_activation=activation,
        backbone_units=units,
        backbone_layers=layers,
        backbone_dropout=dropout,
    )
    ours = [m for m in converted.backbone if isinstance(m, nn.Linear)]
    theirs = [m for m in (cell.backbone or []) if isinstance(m, nn.Linear)]
    for target, source in zip(ours, theirs):
        _copy(target.weight, source.weight)
        _copy(target.bias, source.bias)
    _copy_heads(converted.heads.weight, converted.heads.bias, cell)
    if cell.mode == "pure":
        _copy(converted.w_tau, cell.w_tau)
        _copy(converted.A, cell.A)
    return converted


def _copy_heads(weight: Tensor, bias: Tensor, cell: Any) -> None:
    """Stack ncps's separate heads into torchlnn's one (heads * H, Z) matrix."""
    names = ("ff1",) if cell.mode == "pure" else ("ff1", "ff2", "time_a", "time_b")
    _copy(weight, torch.cat([getattr(cell, name).weight for name in names], dim=0))
    _copy(bias, torch.cat([getattr(cell, name).bias for name in names], dim=0))


def _convert_wired_cell(cell: Any) -> WiredCfCCell:
    wiring = convert_wiring(cell._wiring)
    mode = cell._layers[0].mode
    converted = WiredCfCCell(wiring.input_dim, wiring, mode=mode, connectivity="ncps")
    for ours, theirs in zip(converted.layers, cell._layers):
        their_mask = theirs.sparsity_mask.detach().to(torch.float32)
        if not torch.equal(ours.mask[: ours.size], their_mask):
            raise ValueError(
                "from_ncps: the ncps WiredCfCCell's sparsity masks do not match its wiring; "
                "was the wiring changed after the cell was built?"
            )
        _copy_heads(ours.weight, ours.bias, theirs)
        if mode == "pure":
            _copy(ours.w_tau, theirs.w_tau)
            _copy(ours.A, theirs.A)
    return converted


def _convert_memory(target: nn.Module, source: Any, order: Tensor | None = None) -> None:
    """Copy the mixed-memory LSTM, reordering neurons when the state order differs.

    ``order[p]`` is the torchlnn neuron id at ncps state position ``p``. The LSTM's gate rows
    (four blocks of N) and its recurrent columns are indexed by neuron, so both follow it.
    """
    input_weight = source.input_map.weight.detach()  # (4N, I)
    input_bias = source.input_map.bias.detach()  # (4N,)
    recurrent_weight = source.recurrent_map.weight.detach()  # (4N, N)
    if order is not None:
        units = order.numel()
        position = torch.empty_like(order)
        position[order] = torch.arange(units)  # position[j]: ncps position of neuron j
        rows = torch.cat([block * units + position for block in range(4)])
        input_weight = input_weight[rows]
        input_bias = input_bias[rows]
        recurrent_weight = recurrent_weight[rows][:, position]
    _copy(target.input_map.weight, input_weight)
    _copy(target.input_map.bias, input_bias)
    _copy(target.recurrent_map.weight, recurrent_weight)


def _convert_cfc_layer(layer: Any) -> CfC:
    cell = layer.rnn_cell
    proj_size = layer.proj_size
    common = {
        "proj_size": proj_size,
        "return_sequences": layer.return_sequences,
        "batch_first": layer.batch_first,
        "mixed_memory": layer.use_mixed,
    }
    if type(cell).__name__ == "WiredCfCCell":
        converted_cell = _convert_wired_cell(cell)
        converted = CfC(
            layer.input_size,
            converted_cell.wiring,
            mode=converted_cell.mode,
            connectivity="ncps",
            **common,
        )
        converted.rnn_cell.load_state_dict(converted_cell.state_dict())
    else:
        converted_cell = _convert_cfc_cell(cell)
        converted = CfC(
            layer.input_size,
            cell.hidden_size,
            mode=cell.mode,
            activation=converted_cell.backbone_activation,
            backbone_units=converted_cell.backbone_units,
            backbone_layers=converted_cell.backbone_layers,
            backbone_dropout=converted_cell.backbone_dropout,
            **common,
        )
        converted.rnn_cell.load_state_dict(converted_cell.state_dict())
    if proj_size is not None:
        _copy(converted.proj.weight, layer.fc.weight)
        _copy(converted.proj.bias, layer.fc.bias)
    if layer.use_mixed:
        _convert_memory(converted.lstm, layer.lstm, _ncps_order(converted))
    return converted


# ---------------------------------------------------------------------------- LTC


def _mapping(name: str) -> str:
    return name if name in ("affine", "linear") else "identity"


def _positive_raw(name: str, value: Tensor, implicit: bool, mask: Tensor | None) -> Tensor:
    """Return torchlnn's raw parameter for an ncps positive parameter."""
    value = value.detach().to(torch.float64)
    if implicit:
        effective = torch.nn.functional.softplus(value)  # what ncps computes with
    else:
        effective = value
    if mask is not None:
        effective = effective * mask.to(torch.float64)
    if (effective < 0).any():
        raise ValueError(
            f"from_ncps: the ncps LTCCell's '{name}' has negative entries (minimum "
            f"{float(effective.min()):g}), which torchlnn's positive parametrisation cannot "
            f"represent. With implicit_param_constraints=False, ncps clips them only in "
            f"apply_weight_constraints(): call it on the ncps module, then convert."
        )
    raw = torch.full_like(effective, _ZERO_RAW)
    representable = effective > 2 * POSITIVE_FLOOR
    raw[representable] = inverse_positive(effective[representable])
    return raw


def _convert_ltc_cell(cell: Any) -> LTCCell:
    wiring = convert_wiring(cell._wiring)
    implicit = bool(cell._implicit_param_constraints)
    converted = LTCCell(
        wiring,
        in_features=wiring.input_dim,
        input_mapping=_mapping(cell._input_mapping),
        output_mapping=_mapping(cell._output_mapping),
        ode_unfolds=cell._ode_unfolds,
        epsilon=cell._epsilon,
    )
    params = cell._params
    mask = params["sparsity_mask"].detach()
    sensory_mask = params["sensory_sparsity_mask"].detach()
    if not torch.equal(mask.to(torch.float32), converted.sparsity_mask) or not torch.equal(
        sensory_mask.to(torch.float32), converted.sensory_sparsity_mask
    ):
        raise ValueError(
            "from_ncps: the ncps LTCCell's sparsity masks do not match its wiring; was the "
            "wiring changed after the cell was built?"
        )
    _copy(converted.gleak_raw, _positive_raw("gleak", params["gleak"], implicit, None))
    _copy(converted.cm_raw, _positive_raw("cm", params["cm"], implicit, None))
    _copy(converted.w_raw, _positive_raw("w", params["w"], implicit, mask))
    _copy(
        converted.sensory_w_raw,
        _positive_raw("sensory_w", params["sensory_w"], implicit, sensory_mask),
    )
    for name in ("vleak", "sigma", "mu", "erev", "sensory_sigma", "sensory_mu", "sensory_erev"):
        _copy(getattr(converted, name), params[name])
    for name in ("input_w", "input_b", "output_w", "output_b"):
        if name in params and hasattr(converted, name):
            _copy(getattr(converted, name), params[name])
    return converted


def _convert_ltc_layer(layer: Any) -> LTC:
    cell = layer.rnn_cell
    converted_cell = _convert_ltc_cell(cell)
    converted = LTC(
        layer.input_size,
        converted_cell.wiring,
        return_sequences=layer.return_sequences,
        batch_first=layer.batch_first,
        mixed_memory=layer.use_mixed,
        input_mapping=converted_cell.input_mapping,
        output_mapping=converted_cell.output_mapping,
        ode_unfolds=converted_cell.ode_unfolds,
        epsilon=converted_cell.epsilon,
    )
    converted.rnn_cell.load_state_dict(converted_cell.state_dict())
    if layer.use_mixed:
        _convert_memory(converted.lstm, layer.lstm)
    return converted


# ---------------------------------------------------------------------------- states


def _ncps_order(module: nn.Module) -> Tensor | None:
    cell = getattr(module, "rnn_cell", module)
    if not isinstance(cell, WiredCfCCell):
        return None
    return torch.cat([layer.neuron_ids for layer in cell.layers])


def state_from_ncps(module: nn.Module, hx: Tensor) -> Tensor:
    """Reorder an ncps state (..., N) into the state order of ``module`` (from ``from_ncps``).

    Only wired CfC states differ in order; other states come back unchanged.
    """
    order = _ncps_order(module)
    if order is None:
        return hx
    result = torch.empty_like(hx)
    result[..., order] = hx
    return result


def state_to_ncps(module: nn.Module, hx: Tensor) -> Tensor:
    """Reorder a state of ``module`` (..., N) into ncps's layer order."""
    order = _ncps_order(module)
    return hx if order is None else hx[..., order]
