"""The wired CfC cell: a CfC that follows a wiring, layer by layer."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchlnn.wirings import Wiring

from . import _cfc_fast
from ._common import WiredModule, check_elapsed_time, resolve_wiring
from .cfc import check_mode, closed_form, fast_step_applies, xavier_blocks_

CONNECTIVITIES = ("wiring", "ncps")


class _WiredLayer(WiredModule):
    """One layer of neurons of a wired CfC cell, with its sources and masked heads.

    The layer's pre-activations read three sources, concatenated in this order:

    * ``x_sources``: input features with a sensory synapse into the layer;
    * ``fresh_sources``: positions, within the previous layer, of neurons whose *new* state
      this layer reads in the same time step (the feed-forward synapses);
    * ``state_sources``: neuron ids whose *previous* state this layer reads (recurrent and
      backward synapses, plus each neuron's own state).

    ``weight`` has shape (heads * H_l, U_l) and ``mask`` the same shape, where H_l is the
    layer's neuron count and U_l the number of sources.
    """

    STRUCTURE = ("neuron_ids", "x_sources", "fresh_sources", "state_sources", "mask")

    def __init__(
        self,
        neuron_ids: list[int],
        x_sources: list[int],
        fresh_sources: list[int],
        state_sources: list[int],
        head_mask: np.ndarray,
        mode: str,
    ):
        super().__init__()
        heads = 1 if mode == "pure" else 4
        size = len(neuron_ids)
        width = len(x_sources) + len(fresh_sources) + len(state_sources)
        self.mode = mode
        self.size = size
        self.splits = (len(x_sources), len(fresh_sources), len(state_sources))
        self.register_buffer("neuron_ids", torch.as_tensor(neuron_ids, dtype=torch.long))
        self.register_buffer("x_sources", torch.as_tensor(x_sources, dtype=torch.long))
        self.register_buffer("fresh_sources", torch.as_tensor(fresh_sources, dtype=torch.long))
        self.register_buffer("state_sources", torch.as_tensor(state_sources, dtype=torch.long))
        self.register_buffer("mask", torch.as_tensor(head_mask, dtype=torch.float32))

        self.weight = nn.Parameter(torch.empty(heads * size, width))
        self.bias = nn.Parameter(torch.empty(heads * size))
        xavier_blocks_(self.weight, heads)
        bound = 1.0 / max(width, 1) ** 0.5
        nn.init.uniform_(self.bias, -bound, bound)
        if mode == "pure":
            self.w_tau = nn.Parameter(torch.zeros(size))
            self.A = nn.Parameter(torch.ones(size))

    def masked_weight(self) -> Tensor:
        return self.weight * self.mask

    def prepare_inputs(self, input: Tensor) -> Tensor:
        """Return the input share of the pre-activations plus the bias, (..., heads * H_l)."""
        weight_x = self.masked_weight()[:, : self.splits[0]]
        return F.linear(input[..., self.x_sources], weight_x, self.bias)

    def advance(
        self, prepared: Tensor, fresh: Tensor | None, hx: Tensor, dt: float | Tensor
    ) -> Tensor:
        """Return the layer's new state (B, H_l)."""
        n_x, n_fresh, _ = self.splits
        weight = self.masked_weight()
        pre = prepared + F.linear(hx[:, self.state_sources], weight[:, n_x + n_fresh :])
        if n_fresh:
            pre = pre + F.linear(fresh[:, self.fresh_sources], weight[:, n_x : n_x + n_fresh])
        w_tau, amplitude = getattr(self, "w_tau", None), getattr(self, "A", None)
        return closed_form(self.mode, pre, dt, w_tau, amplitude)


class WiredCfCCell(WiredModule):
    r"""A CfC cell whose neurons and synapses follow a wiring, updated layer by layer.

    Each layer of the wiring (for an NCP: inter, then command, then motor) is a CfC without a
    backbone (see ``CfCCell`` for the closed form and the modes). Within one time step the
    layers are updated in order, nearest the input first, so a layer reads the *new* state of
    the layer before it. Its heads read:

    * the input features that have a sensory synapse into the layer;
    * the new state of the previous layer's neurons that have a synapse into it;
    * the previous state of every other neuron with a synapse into it (recurrent synapses,
      such as command-to-command, and synapses from later layers);
    * each neuron's own previous state. This self-input is the closed-form counterpart of the
      LTC membrane's memory, not a synapse of the wiring, and is always present.

    Every head (``f_1``, ``f_2``, ``t_a``, ``t_b``) is masked by the wiring, so an absent
    synapse has no effect at all. The state uses the wiring's neuron order: motor neurons
    first, so the output is ``h[:, :M]``, the motor neurons.

    NOTE: ncps 1.0.1's ``WiredCfCCell`` differs: it connects every neuron of a layer to all
    neurons of the same layer, leaves the time heads ``t_a`` and ``t_b`` dense, orders its state
    by layer (inter, command, motor) and returns the whole last layer. ``connectivity="ncps"``
    reproduces that computation for ``torchlnn.interop.ncps.from_ncps``; its state is still in
    the wiring's neuron order.

    NOTE: the strict "wiring" connectivity can train much more slowly. On the lane-keeping
    policy of ``torchlnn.driving`` (``NCP(12, 6, 1, 6, 4, 6, 6)`` on 32 features, one seed) its
    validation loss did not improve in 5 epochs, while with "ncps" it fell from 1.24 to 0.47 in
    3. Which of the two differences causes this was not isolated.

    Args:
        input_size: I, the number of input features; builds the wiring if needed.
        wiring: the connectivity (N neurons, M motor neurons).
        mode: "default", "no_gate" or "pure".
        connectivity: "wiring" (default) or "ncps", see the note above.

    Shapes:
        * input: (B, I) or (I,); hx: (B, N) or (N,), zeros when ``None``
        * dt: a number, or a tensor of shape (B,) or (B, 1)
        * output: (B, M) or (M,); h: (B, N) or (N,)
    """

    STRUCTURE = ("state_order",)

    # Use the fast path (torchlnn.cells._cfc_fast) where it applies. Set to False on an
    # instance to run the plain reference methods instead, for instance to compare the two.
    fast_path = True

    def __init__(
        self,
        input_size: int | None,
        wiring: Wiring,
        mode: str = "default",
        connectivity: str = "wiring",
    ):
        super().__init__()
        self.wiring = resolve_wiring(wiring, input_size, "WiredCfCCell")
        self.mode = check_mode(mode, "WiredCfCCell")
        if connectivity not in CONNECTIVITIES:
            raise ValueError(
                f"WiredCfCCell: connectivity must be one of {list(CONNECTIVITIES)}, got "
                f"{connectivity!r}."
            )
        self.connectivity = connectivity

        layer_ids = self.wiring.layers()
        order = [i for ids in layer_ids for i in ids]
        if sorted(order) != list(range(self.wiring.units)):
            raise ValueError(
                f"WiredCfCCell: the wiring's layers must contain every neuron exactly once; "
                f"got layers {layer_ids} for {self.wiring.units} neurons."
            )
        build = self._ncps_layer if connectivity == "ncps" else self._wiring_layer
        self.layers = nn.ModuleList(build(index, layer_ids) for index in range(len(layer_ids)))

        # The layers' outputs, concatenated, come in layer order; this puts them in id order.
        inverse = np.empty(len(order), dtype=np.int64)
        inverse[np.asarray(order)] = np.arange(len(order))
        self.register_buffer("state_order", torch.as_tensor(inverse))
        last = layer_ids[-1]
        self._readout_ids = list(last) if connectivity == "ncps" else None

    # ------------------------------------------------------------------ layer construction

    def _wiring_layer(self, index: int, layer_ids: list[list[int]]) -> _WiredLayer:
        adjacency = np.abs(self.wiring.adjacency_matrix)
        sensory = np.abs(self.wiring.sensory_adjacency_matrix)
        ids = layer_ids[index]
        previous = layer_ids[index - 1] if index > 0 else []

        x_sources = [k for k in range(sensory.shape[0]) if sensory[k, ids].any()]
        fresh_sources = [p for p, j in enumerate(previous) if adjacency[j, ids].any()]
        previous_set = set(previous)
        state_sources = [
            j
            for j in range(self.wiring.units)
            if (j not in previous_set and adjacency[j, ids].any()) or j in ids
        ]

        rows = []
        for i in ids:
            row = [sensory[k, i] for k in x_sources]
            row += [adjacency[previous[p], i] for p in fresh_sources]
            row += [1 if j == i else adjacency[j, i] for j in state_sources]
            rows.append(row)
        mask = np.asarray(rows, dtype=np.float32).reshape(len(ids), -1)
        heads = 1 if self.mode == "pure" else 4
        return _WiredLayer(
            ids, x_sources, fresh_sources, state_sources, np.tile(mask, (heads, 1)), self.mode
        )

    def _ncps_layer(self, index: int, layer_ids: list[list[int]]) -> _WiredLayer:
        adjacency = np.abs(self.wiring.adjacency_matrix)
        sensory = np.abs(self.wiring.sensory_adjacency_matrix)
        ids = layer_ids[index]
        if index == 0:
            x_sources, fresh_sources = list(range(sensory.shape[0])), []
            feed = sensory[:, ids]  # (I, H_l)
        else:
            previous = layer_ids[index - 1]
            x_sources, fresh_sources = [], list(range(len(previous)))
            feed = adjacency[np.ix_(previous, ids)]  # (H_{l-1}, H_l)
        own = np.ones((len(ids), len(ids)))
        masked = np.concatenate([feed, own], axis=0).T.astype(np.float32)  # (H_l, U_l)
        if self.mode == "pure":
            mask = masked
        else:
            dense = np.ones_like(masked)
            mask = np.concatenate([masked, masked, dense, dense], axis=0)
        return _WiredLayer(ids, x_sources, fresh_sources, list(ids), mask, self.mode)

    # ------------------------------------------------------------------ sizes

    @property
    def state_size(self) -> int:
        return self.wiring.units

    @property
    def sensory_size(self) -> int:
        return self.wiring.input_dim

    @property
    def motor_size(self) -> int:
        if self._readout_ids is not None:
            return len(self._readout_ids)
        return self.wiring.output_dim

    output_size = motor_size

    @property
    def synapse_count(self) -> int:
        return self.wiring.synapse_count

    @property
    def sensory_synapse_count(self) -> int:
        return self.wiring.sensory_synapse_count

    @property
    def layer_sizes(self) -> list[int]:
        return [layer.size for layer in self.layers]

    # ------------------------------------------------------------------ computation

    def prepare_inputs(self, input: Tensor) -> Tensor:
        """Return every layer's input share of its pre-activations, concatenated (..., P)."""
        return torch.cat([layer.prepare_inputs(input) for layer in self.layers], dim=-1)

    def advance(self, prepared: Tensor, hx: Tensor, dt: float | Tensor) -> Tensor:
        """Return the new state (B, N) from one step of ``prepare_inputs`` (B, P)."""
        widths = [layer.bias.shape[0] for layer in self.layers]
        outputs = []
        fresh = None
        for layer, layer_prepared in zip(self.layers, prepared.split(widths, dim=-1)):
            fresh = layer.advance(layer_prepared, fresh, hx, dt)  # (B, H_l)
            outputs.append(fresh)
        return torch.cat(outputs, dim=-1)[:, self.state_order]  # layer order -> id order

    def readout(self, state: Tensor) -> Tensor:
        """Return the output for states (..., N): the motor neurons (..., M)."""
        if self._readout_ids is not None:
            return state[..., self._readout_ids]
        return state.narrow(-1, 0, self.wiring.output_dim)

    def forward(
        self, input: Tensor, hx: Tensor | None = None, dt: float | Tensor = 1.0
    ) -> tuple[Tensor, Tensor]:
        """Advance one input step and return ``(output, h)``; see the class docstring."""
        if input.dim() not in (1, 2) or input.shape[-1] != self.sensory_size:
            raise ValueError(
                f"WiredCfCCell expects input of shape (B, {self.sensory_size}) or "
                f"({self.sensory_size},), got {tuple(input.shape)}."
            )
        unbatched = input.dim() == 1
        if unbatched:
            input = input.unsqueeze(0)
            hx = None if hx is None else hx.unsqueeze(0)
        batch = input.shape[0]
        if hx is None:
            hx = input.new_zeros(batch, self.state_size)
        elif tuple(hx.shape) != (batch, self.state_size):
            raise ValueError(
                f"WiredCfCCell expects hx of shape ({batch}, {self.state_size}), got "
                f"{tuple(hx.shape)}."
            )
        dt = check_elapsed_time(dt, batch, "WiredCfCCell")

        if fast_step_applies(self, input, hx, dt):
            h = _cfc_fast.step(self, input, hx, dt)
        else:
            h = self.advance(self.prepare_inputs(input), hx, dt)
        output = self.readout(h)

        if unbatched:
            return output.squeeze(0), h.squeeze(0)
        return output, h

    def run_fast(
        self,
        input: Tensor,
        hx: Tensor,
        dt: float | Tensor,
        mask: Tensor | None,
        keep_states: bool,
        chunk: int,
    ) -> tuple[Tensor | None, Tensor] | None:
        """Run a whole sequence with the fast path; see ``LTCCell.run_fast``."""
        if not (self.fast_path and _cfc_fast.supports_fast_path(self)):
            return None
        return _cfc_fast.run_sequence(self, input, hx, dt, mask, keep_states, chunk)

    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments, with the wiring as its config (JSON-serialisable)."""
        return {
            "input_size": self.sensory_size,
            "wiring": self.wiring.get_config(),
            "mode": self.mode,
            "connectivity": self.connectivity,
        }

    def extra_repr(self) -> str:
        return (
            f"input_size={self.sensory_size}, units={self.state_size}, "
            f"layers={self.layer_sizes}, mode={self.mode!r}, connectivity={self.connectivity!r}"
        )
