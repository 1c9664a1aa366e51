"""The closed-form continuous-time (CfC) cell with a dense backbone."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchlnn._compat import is_compiling

from . import _cfc_fast
from ._common import check_elapsed_time
from ._fast import FAST_DTYPES, autocast_active, exporting, grad_needed

MODES = ("default", "no_gate", "pure")


class LeCunTanh(nn.Module):
    """``1.7159 * tanh(0.666 * x)``: LeCun's scaled tanh, with ncps 1.0.1's 0.666 for 2/3."""

    def forward(self, x: Tensor) -> Tensor:
        return 1.7159 * torch.tanh(0.666 * x)


ACTIVATIONS = {
    "lecun_tanh": LeCunTanh,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def check_mode(mode: str, owner: str) -> str:
    if mode not in MODES:
        raise ValueError(f"{owner}: mode must be one of {list(MODES)}, got {mode!r}.")
    return mode


def closed_form(
    mode: str,
    heads: Tensor,
    dt: float | Tensor,
    w_tau: Tensor | None = None,
    amplitude: Tensor | None = None,
) -> Tensor:
    r"""Return the CfC state update from the pre-activations of its heads.

    Args:
        mode: "default", "no_gate" or "pure".
        heads: (B, 4H) pre-activations ``[f_1, f_2, t_a, t_b]`` for "default" and "no_gate",
            or (B, H) pre-activation ``f_1`` for "pure".
        dt: elapsed time, a float or (B, 1).
        w_tau, amplitude: (H,) parameters ``w_tau`` and ``A`` of the "pure" mode.
    """
    if mode == "pure":
        f1 = heads
        return -amplitude * torch.exp(-dt * (w_tau.abs() + f1.abs())) * f1 + amplitude

    f1, f2, t_a, t_b = heads.chunk(4, dim=-1)  # each (B, H)
    gate = torch.sigmoid(t_a * dt + t_b)
    if mode == "no_gate":
        return torch.tanh(f1) + gate * torch.tanh(f2)
    return torch.tanh(f1) * (1.0 - gate) + gate * torch.tanh(f2)


def fast_step_applies(cell: nn.Module, input: Tensor, hx: Tensor, dt: float | Tensor) -> bool:
    """Return whether a CfC cell's forward may take the fast single step: no autograd, no
    autocast, no active dropout, and outside tracing, export and ``torch.compile`` (which
    compiles the reference step)."""
    return (
        cell.fast_path
        and _cfc_fast.supports_fast_path(cell)
        and not autocast_active(input.device.type)
        and input.dtype in FAST_DTYPES
        and not exporting()
        and not is_compiling()
        and not grad_needed(cell, input, hx, dt if isinstance(dt, Tensor) else None)
    )


def xavier_blocks_(weight: Tensor, blocks: int) -> None:
    """Xavier-uniform initialise ``weight`` as ``blocks`` stacked matrices of equal height."""
    with torch.no_grad():
        for block in weight.chunk(blocks, dim=0):
            nn.init.xavier_uniform_(block)


class CfCCell(nn.Module):
    r"""A closed-form continuous-time (CfC) cell: the LTC dynamics without an ODE solver.

    Hasani, Lechner, Amini, Liebenwein, Ray, Tschaikowski, Teschl and Rus, "Closed-form
    continuous-time neural networks", Nature Machine Intelligence 4, 2022. A backbone network
    reads the input ``u`` and the previous state ``h``, and heads compute the new state in
    closed form as a function of the elapsed time ``Δt``:

    .. math::

        z &= \mathrm{backbone}([u; h]) \\
        f_1 &= W_1 z + b_1, \quad f_2 = W_2 z + b_2, \quad
        t_a = W_a z + b_a, \quad t_b = W_b z + b_b \\
        \gamma &= \mathrm{sigmoid}(t_a \Delta t + t_b)

    and, depending on ``mode``,

    * ``"default"``: :math:`h' = \tanh(f_1) (1 - \gamma) + \gamma \tanh(f_2)`, the paper's
      gated form :math:`\sigma(-f t) g + (1 - \sigma(-f t)) h` with the time gate
      :math:`\sigma(-f t)` written as :math:`1 - \gamma`;
    * ``"no_gate"``: :math:`h' = \tanh(f_1) + \gamma \tanh(f_2)`;
    * ``"pure"``: :math:`h' = -A \, e^{-\Delta t (|w_\tau| + |f_1|)} f_1 + A`, the direct
      approximation of the LTC solution :math:`(x_0 - A) e^{-(w_\tau + f) t} f + A`. NOTE: as
      in ncps 1.0.1, ``x_0 - A`` is replaced by ``-A``; the previous state enters through
      ``f_1`` instead.

    The backbone is ``backbone_layers`` blocks of Linear, activation and dropout, of width
    ``backbone_units``; with ``backbone_layers=0`` the heads read ``[u; h]`` directly. The
    first linear map is applied as ``W_u u + W_h h + b``: the input half is computed for all
    steps of a sequence before the time loop (``prepare_inputs``).

    Init: every weight matrix (each head separately) is Xavier-uniform, biases keep PyTorch's
    Linear default, ``w_tau = 0`` and ``A = 1``. NOTE: ncps 1.0.1 also applies Xavier to its
    (1, H) ``w_tau`` and ``A``, overwriting its zeros and ones.

    Args:
        input_size: I, the number of input features.
        hidden_size: H, the number of neurons (the state size, also the output size).
        mode: "default", "no_gate" or "pure".
        backbone_activation: "lecun_tanh", "tanh", "relu", "gelu" or "silu".
        backbone_units: width of each backbone layer.
        backbone_layers: number of backbone layers (0 for none).
        backbone_dropout: dropout probability after each backbone layer. NOTE: ncps 1.0.1
            adds dropout only after the second and later layers, so it ignores this value with
            one layer.

    Shapes:
        * input: (B, I) or (I,); hx: (B, H) or (H,), zeros when ``None``
        * dt: a number, or a tensor of shape (B,) or (B, 1)
        * output and h: (B, H) or (H,); the output is the new state.
    """

    # Use the fast path (torchlnn.cells._cfc_fast) where it applies. Set to False on an
    # instance to run the plain reference methods instead, for instance to compare the two.
    fast_path = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        mode: str = "default",
        backbone_activation: str = "lecun_tanh",
        backbone_units: int = 128,
        backbone_layers: int = 1,
        backbone_dropout: float = 0.0,
    ):
        super().__init__()
        for name, value, minimum in (
            ("input_size", input_size, 1),
            ("hidden_size", hidden_size, 1),
            ("backbone_units", backbone_units, 1),
            ("backbone_layers", backbone_layers, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"CfCCell: {name} must be an int >= {minimum}, got {value!r}.")
        if backbone_activation not in ACTIVATIONS:
            raise ValueError(
                f"CfCCell: backbone_activation must be one of {sorted(ACTIVATIONS)}, got "
                f"{backbone_activation!r}."
            )
        if not 0.0 <= backbone_dropout < 1.0:
            raise ValueError(
                f"CfCCell: backbone_dropout must be in [0, 1), got {backbone_dropout!r}."
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.mode = check_mode(mode, "CfCCell")
        self.backbone_activation = backbone_activation
        self.backbone_units = backbone_units
        self.backbone_layers = backbone_layers
        self.backbone_dropout = float(backbone_dropout)

        # The first linear map reads [u; h]; later backbone layers read the backbone output.
        layers: list[nn.Module] = []
        width = input_size + hidden_size
        for _ in range(backbone_layers):
            layers += [nn.Linear(width, backbone_units), ACTIVATIONS[backbone_activation]()]
            if backbone_dropout > 0.0:
                layers.append(nn.Dropout(backbone_dropout))
            width = backbone_units
        self.backbone = nn.Sequential(*layers)

        heads = 1 if mode == "pure" else 4
        self.heads = nn.Linear(width, heads * hidden_size)
        if mode == "pure":
            self.w_tau = nn.Parameter(torch.zeros(hidden_size))
            self.A = nn.Parameter(torch.ones(hidden_size))

        for module in self.backbone:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
        xavier_blocks_(self.heads.weight, heads)

    @property
    def state_size(self) -> int:
        return self.hidden_size

    @property
    def output_size(self) -> int:
        return self.hidden_size

    @property
    def motor_size(self) -> int:
        return self.hidden_size

    def _first_linear(self) -> nn.Linear:
        return self.backbone[0] if self.backbone_layers > 0 else self.heads

    def prepare_inputs(self, input: Tensor) -> Tensor:
        """Return the input half of the first linear map, ``W_u u + b``, shape (..., Z1)."""
        first = self._first_linear()
        return F.linear(input, first.weight[:, : self.input_size], first.bias)

    def advance(self, prepared: Tensor, hx: Tensor, dt: float | Tensor) -> Tensor:
        """Return the new state from one step of ``prepare_inputs`` (B, Z1) and hx (B, H)."""
        first = self._first_linear()
        pre = prepared + F.linear(hx, first.weight[:, self.input_size :])
        if self.backbone_layers > 0:
            # The backbone's first Linear is done: run the rest of it (activation onwards).
            z = pre
            for module in list(self.backbone)[1:]:
                z = module(z)
            pre = self.heads(z)
        return closed_form(
            self.mode, pre, dt, getattr(self, "w_tau", None), getattr(self, "A", None)
        )

    def readout(self, state: Tensor) -> Tensor:
        """Return the output for states (..., H): the state itself."""
        return state

    def forward(
        self, input: Tensor, hx: Tensor | None = None, dt: float | Tensor = 1.0
    ) -> tuple[Tensor, Tensor]:
        """Advance one input step and return ``(output, h)``; see the class docstring."""
        if input.dim() not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(
                f"CfCCell expects input of shape (B, {self.input_size}) or ({self.input_size},), "
                f"got {tuple(input.shape)}."
            )
        unbatched = input.dim() == 1
        if unbatched:
            input = input.unsqueeze(0)
            hx = None if hx is None else hx.unsqueeze(0)
        batch = input.shape[0]
        if hx is None:
            hx = input.new_zeros(batch, self.hidden_size)
        elif tuple(hx.shape) != (batch, self.hidden_size):
            raise ValueError(
                f"CfCCell expects hx of shape ({batch}, {self.hidden_size}), got "
                f"{tuple(hx.shape)}."
            )
        dt = check_elapsed_time(dt, batch, "CfCCell")

        if fast_step_applies(self, input, hx, dt):
            h = _cfc_fast.step(self, input, hx, dt)
        else:
            h = self.advance(self.prepare_inputs(input), hx, dt)

        if unbatched:
            return h.squeeze(0), h.squeeze(0)
        return h, h

    def run_fast(
        self,
        input: Tensor,
        hx: Tensor,
        dt: float | Tensor,
        mask: Tensor | None,
        keep_states: bool,
        chunk: int,
    ) -> tuple[Tensor | None, Tensor] | None:
        """Run a whole sequence with the fast path, or return None where it does not apply.

        See ``LTCCell.run_fast`` for the arguments. With an active backbone dropout (a
        backbone ``nn.Dropout`` in training mode with ``p > 0``) the fast path applies only
        where autograd records: it then draws every step's dropout mask before the loop.
        """
        record = grad_needed(self, input, hx)
        if not (self.fast_path and _cfc_fast.supports_fast_path(self, record)):
            return None
        return _cfc_fast.run_sequence(self, input, hx, dt, mask, keep_states, chunk)

    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments (JSON-serialisable)."""
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "mode": self.mode,
            "backbone_activation": self.backbone_activation,
            "backbone_units": self.backbone_units,
            "backbone_layers": self.backbone_layers,
            "backbone_dropout": self.backbone_dropout,
        }

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, hidden_size={self.hidden_size}, mode={self.mode!r}"
