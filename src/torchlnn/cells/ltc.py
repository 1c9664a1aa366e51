"""The liquid time-constant (LTC) cell."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from torchlnn._compat import is_compiling
from torchlnn.solvers import Solver, get_solver
from torchlnn.wirings import Wiring

from . import _ltc_fast
from ._common import (
    WiredModule,
    check_elapsed_time,
    inverse_positive,
    positive,
    resolve_wiring,
    uniform,
)
from ._fast import FAST_DTYPES, autocast_active, exporting, grad_needed

_MAPPINGS = ("affine", "linear", "identity", None)


class LTCCell(WiredModule):
    r"""A liquid time-constant (LTC) cell: one input step of the LTC membrane equation.

    Hasani, Lechner, Amini, Rus and Grosu, "Liquid Time-constant Networks", AAAI 2021. Each
    neuron ``i`` has a membrane potential ``v_i`` that follows

    .. math::

        C_{m,i} \frac{dv_i}{dt} = g_{leak,i} (v_{leak,i} - v_i)
            + \sum_j g_{ji}(v_j) (E_{ji} - v_i)
            + \sum_k g^s_{ki}(u_k) (E^s_{ki} - v_i)

    where the sums run over the synapses of the wiring, from neurons ``j`` and from input
    features ``k``, and each synapse's conductance is a sigmoid of its presynaptic potential:

    .. math::

        g_{ji}(v_j) = w_{ji} \, \mathrm{sigmoid}(\sigma_{ji} (v_j - \mu_{ji})), \qquad
        g^s_{ki}(u_k) = w^s_{ki} \, \mathrm{sigmoid}(\sigma^s_{ki} (u_k - \mu^s_{ki})).

    Symbols (one value per neuron or per synapse; all in the model's own units, with time in
    the unit of ``dt``):

    * ``v``: membrane potential, the state ``hx``.
    * ``u = input * input_w + input_b``: the mapped input (``input_mapping="affine"``).
    * ``C_m > 0``: membrane capacitance (``cm``). Larger means slower.
    * ``g_leak > 0``, ``v_leak``: leak conductance and its resting potential.
    * ``w > 0``: maximum synaptic conductance; ``sigma``: steepness; ``mu``: half-activation
      potential; ``E``: reversal potential (initialised to the synapse polarity, +1 or -1).

    Grouping the terms gives ``C_m dv/dt = numerator(v) - denominator(v) * v`` with

    .. math::

        \mathrm{numerator} = g_{leak} v_{leak} + \sum g E, \qquad
        \mathrm{denominator} = g_{leak} + \sum g,

    the signed numerator and positive denominator that every solver uses. The default solver
    is the paper's fused semi-implicit step, repeated ``ode_unfolds`` times with ``h = dt /
    ode_unfolds``:

    .. math::

        v \leftarrow \frac{C_m v + h \cdot \mathrm{numerator}(v)}
                          {C_m + h (\mathrm{denominator}(v) + \epsilon)}.

    The output is the motor neurons' potential, mapped: ``y = v[:, :M] * output_w + output_b``.

    Positivity: ``C_m``, ``g_leak``, ``w`` and ``w^s`` are stored unconstrained (``cm_raw``,
    ``gleak_raw``, ``w_raw``, ``sensory_w_raw``) and computed as ``softplus(raw) + 1e-6``, so
    they stay positive after any optimiser step with no clipping call (the floor keeps them
    positive where softplus alone would underflow to 0 in float32). The properties ``cm``,
    ``gleak``, ``w`` and ``sensory_w`` return the positive values, with absent synapses zeroed.
    With the fused solver the state therefore stays within the range of ``hx``, ``v_leak``
    and ``E``.

    Initialisation draws the positive values uniformly from the LTC paper's ranges
    (``INIT_RANGES``) and stores the inverse of that map. NOTE: ncps 1.0.1's ``LTC`` layer
    instead applies softplus to raw values drawn from those ranges, so its initial conductances
    and capacitances are larger (softplus(0.5) is about 0.97).

    Args:
        wiring: the connectivity, a ``torchlnn.wirings.Wiring`` (N neurons, M motor neurons).
        in_features: number of input features I; builds the wiring if it is not built yet.
        input_mapping: "affine" (``input * input_w + input_b``), "linear" (``input * input_w``)
            or "identity" (``None`` also means identity).
        output_mapping: the same choices, applied to the motor neurons.
        ode_unfolds: number of solver sub-steps per input step.
        epsilon: added to the fused step's denominator (kept for parity with ncps).
        solver: "fused", "euler", "rk4", "adaptive" or a ``torchlnn.solvers.Solver``.

    Shapes:
        * input: (B, I) or (I,)
        * hx: (B, N) or (N,); zeros when ``None``
        * dt: a number, or a tensor of shape (B,) or (B, 1); one elapsed time per sample
        * output: (B, M) or (M,); h: (B, N) or (N,)

    where B is the batch size, I the number of input features, N the number of neurons and M
    the number of motor neurons.
    """

    STRUCTURE = ("sparsity_mask", "sensory_sparsity_mask")

    # Use the fast path (torchlnn.cells._ltc_fast) where it applies. Set to False on an
    # instance to run the plain reference methods instead, for instance to compare the two.
    fast_path = True

    INIT_RANGES = {
        "gleak": (0.001, 1.0),
        "vleak": (-0.2, 0.2),
        "cm": (0.4, 0.6),
        "w": (0.001, 1.0),
        "sigma": (3.0, 8.0),
        "mu": (0.3, 0.8),
        "sensory_w": (0.001, 1.0),
        "sensory_sigma": (3.0, 8.0),
        "sensory_mu": (0.3, 0.8),
    }

    def __init__(
        self,
        wiring: Wiring,
        in_features: int | None = None,
        input_mapping: str | None = "affine",
        output_mapping: str | None = "affine",
        ode_unfolds: int = 6,
        epsilon: float = 1e-8,
        solver: str | Solver = "fused",
    ):
        super().__init__()
        self.wiring = resolve_wiring(wiring, in_features, "LTCCell")
        for name, mapping in (("input_mapping", input_mapping), ("output_mapping", output_mapping)):
            if mapping not in _MAPPINGS:
                raise ValueError(
                    f"LTCCell: {name} must be one of 'affine', 'linear', 'identity' or None, "
                    f"got {mapping!r}."
                )
        if isinstance(ode_unfolds, bool) or not isinstance(ode_unfolds, int) or ode_unfolds < 1:
            raise ValueError(f"LTCCell: ode_unfolds must be an int >= 1, got {ode_unfolds!r}.")
        if not epsilon >= 0:
            raise ValueError(f"LTCCell: epsilon must be >= 0, got {epsilon!r}.")
        self.input_mapping = input_mapping or "identity"
        self.output_mapping = output_mapping or "identity"
        self.ode_unfolds = ode_unfolds
        self.epsilon = float(epsilon)
        self.solver = get_solver(solver, epsilon=self.epsilon)
        self._allocate_parameters()

    # ------------------------------------------------------------------ parameters

    def _allocate_parameters(self) -> None:
        units, inputs, motors = self.state_size, self.sensory_size, self.motor_size
        ranges = self.INIT_RANGES

        def positive_parameter(shape, key):
            return nn.Parameter(inverse_positive(uniform(shape, *ranges[key])))

        def plain_parameter(shape, key):
            return nn.Parameter(uniform(shape, *ranges[key]))

        self.gleak_raw = positive_parameter((units,), "gleak")
        self.vleak = plain_parameter((units,), "vleak")
        self.cm_raw = positive_parameter((units,), "cm")
        self.sigma = plain_parameter((units, units), "sigma")
        self.mu = plain_parameter((units, units), "mu")
        self.w_raw = positive_parameter((units, units), "w")
        self.erev = nn.Parameter(
            torch.as_tensor(self.wiring.erev_initializer(), dtype=torch.float32)
        )
        self.sensory_sigma = plain_parameter((inputs, units), "sensory_sigma")
        self.sensory_mu = plain_parameter((inputs, units), "sensory_mu")
        self.sensory_w_raw = positive_parameter((inputs, units), "sensory_w")
        self.sensory_erev = nn.Parameter(
            torch.as_tensor(self.wiring.sensory_erev_initializer(), dtype=torch.float32)
        )

        # Masks are buffers: they follow .to(), live in the state dict and are never trained.
        adjacency = torch.as_tensor(self.wiring.adjacency_matrix)
        sensory_adjacency = torch.as_tensor(self.wiring.sensory_adjacency_matrix)
        self.register_buffer("sparsity_mask", adjacency.abs().to(torch.float32))
        self.register_buffer("sensory_sparsity_mask", sensory_adjacency.abs().to(torch.float32))

        if self.input_mapping in ("affine", "linear"):
            self.input_w = nn.Parameter(torch.ones(inputs))
        if self.input_mapping == "affine":
            self.input_b = nn.Parameter(torch.zeros(inputs))
        if self.output_mapping in ("affine", "linear"):
            self.output_w = nn.Parameter(torch.ones(motors))
        if self.output_mapping == "affine":
            self.output_b = nn.Parameter(torch.zeros(motors))

    @property
    def state_size(self) -> int:
        """N, the number of neurons."""
        return self.wiring.units

    @property
    def sensory_size(self) -> int:
        """I, the number of input features."""
        return self.wiring.input_dim

    @property
    def motor_size(self) -> int:
        """M, the number of motor neurons (the output size)."""
        return self.wiring.output_dim

    output_size = motor_size

    @property
    def synapse_count(self) -> int:
        """Number of synapses between neurons."""
        return self.wiring.synapse_count

    @property
    def sensory_synapse_count(self) -> int:
        """Number of synapses from input features to neurons."""
        return self.wiring.sensory_synapse_count

    @property
    def gleak(self) -> Tensor:
        """Leak conductance g_leak > 0, shape (N,)."""
        return positive(self.gleak_raw)

    @property
    def cm(self) -> Tensor:
        """Membrane capacitance C_m > 0, shape (N,)."""
        return positive(self.cm_raw)

    @property
    def w(self) -> Tensor:
        """Maximum conductance of each synapse, zero where the wiring has none, shape (N, N)."""
        return positive(self.w_raw) * self.sparsity_mask

    @property
    def sensory_w(self) -> Tensor:
        """Maximum conductance of each sensory synapse, zero where absent, shape (I, N)."""
        return positive(self.sensory_w_raw) * self.sensory_sparsity_mask

    def apply_weight_constraints(self) -> None:
        """Do nothing: positivity holds by construction. Kept so ncps training loops run."""

    # ------------------------------------------------------------------ the equation

    def map_inputs(self, input: Tensor) -> Tensor:
        """Return the mapped input ``u``, shape (..., I)."""
        if self.input_mapping in ("affine", "linear"):
            input = input * self.input_w
        if self.input_mapping == "affine":
            input = input + self.input_b
        return input

    def prepare_inputs(self, input: Tensor) -> Tensor:
        """Return the sensory synapses' share of numerator and denominator, shape (..., 2, N).

        These depend on the input only, so a sequence layer computes them for many steps at
        once before its time loop. Index 0 of the second-to-last axis is the numerator
        ``sum g^s E^s``, index 1 the denominator ``sum g^s``.
        """
        u = self.map_inputs(input)
        activation = torch.sigmoid(self.sensory_sigma * (u.unsqueeze(-1) - self.sensory_mu))
        conductance = self.sensory_w * activation  # (..., I, N)
        numerator = (conductance * self.sensory_erev).sum(-2)  # (..., N)
        denominator = conductance.sum(-2)  # (..., N)
        return torch.stack((numerator, denominator), dim=-2)  # (..., 2, N)

    def synaptic_terms(self, prepared: Tensor):
        """Return ``terms(v) -> (numerator, denominator)`` for one input step.

        ``prepared`` is one step of ``prepare_inputs``, shape (B, 2, N). Everything that does
        not depend on ``v`` is computed here once, outside the solver's sub-steps.
        """
        gleak = self.gleak
        base_numerator = prepared[..., 0, :] + gleak * self.vleak  # (B, N)
        base_denominator = prepared[..., 1, :] + gleak  # (B, N)
        w = self.w
        w_erev = w * self.erev
        sigma, mu = self.sigma, self.mu

        def terms(v: Tensor) -> tuple[Tensor, Tensor]:
            activation = torch.sigmoid(sigma * (v.unsqueeze(-1) - mu))  # (B, N_src, N_dst)
            numerator = base_numerator + (activation * w_erev).sum(-2)  # (B, N)
            denominator = base_denominator + (activation * w).sum(-2)  # (B, N)
            return numerator, denominator

        return terms

    def advance(self, prepared: Tensor, hx: Tensor, dt: float | Tensor) -> Tensor:
        """Return the state after one input step, from ``prepare_inputs`` output (B, 2, N)."""
        return self.solver.integrate(
            self.synaptic_terms(prepared), self.cm, hx, dt, self.ode_unfolds
        )

    def readout(self, state: Tensor) -> Tensor:
        """Return the output for states of shape (..., N): the mapped motor neurons (..., M)."""
        output = state.narrow(-1, 0, self.motor_size)
        if self.output_mapping == "affine":
            return torch.addcmul(self.output_b, output, self.output_w)
        if self.output_mapping == "linear":
            return output * self.output_w
        return output

    def time_constants(self, input: Tensor, hx: Tensor) -> Tensor:
        """Return each neuron's system time constant at this input and state, shape (B, N).

        ``tau_sys = C_m / (g_leak + sum of the synaptic conductances active now)``: the time
        scale on which the membrane relaxes, which the input changes (the "liquid" part).
        """
        input, hx, unbatched = self._batch(input, hx)
        _, denominator = self.synaptic_terms(self.prepare_inputs(input))(hx)
        tau = self.cm / denominator
        return tau.squeeze(0) if unbatched else tau

    # ------------------------------------------------------------------ forward

    def _batch(self, input: Tensor, hx: Tensor | None) -> tuple[Tensor, Tensor, bool]:
        if input.dim() not in (1, 2) or input.shape[-1] != self.sensory_size:
            raise ValueError(
                f"LTCCell expects input of shape (B, {self.sensory_size}) or "
                f"({self.sensory_size},), got {tuple(input.shape)}."
            )
        unbatched = input.dim() == 1
        if unbatched:
            input = input.unsqueeze(0)
        batch = input.shape[0]
        if hx is None:
            hx = input.new_zeros(batch, self.state_size)
        else:
            expected = (self.state_size,) if unbatched else (batch, self.state_size)
            if tuple(hx.shape) != expected:
                raise ValueError(
                    f"LTCCell expects hx of shape {expected} for input of shape "
                    f"{tuple(input.shape if not unbatched else input.shape[1:])}, got "
                    f"{tuple(hx.shape)}."
                )
            if unbatched:
                hx = hx.unsqueeze(0)
        return input, hx, unbatched

    def forward(
        self, input: Tensor, hx: Tensor | None = None, dt: float | Tensor = 1.0
    ) -> tuple[Tensor, Tensor]:
        """Advance one input step and return ``(output, h)``; see the class docstring."""
        input, hx, unbatched = self._batch(input, hx)
        dt = check_elapsed_time(dt, input.shape[0], "LTCCell")

        if self._fast_step_applies(input, hx, dt):
            h = _ltc_fast.step(self, input, hx, dt)
        else:
            h = self.advance(self.prepare_inputs(input), hx, dt)
        output = self.readout(h)

        if unbatched:
            return output.squeeze(0), h.squeeze(0)
        return output, h

    # ------------------------------------------------------------------ fast path

    def _fast_step_applies(self, input: Tensor, hx: Tensor, dt: float | Tensor) -> bool:
        """Return whether ``forward`` may take the fast single step: no autograd, no autocast,
        a supported solver and dtype, and outside tracing, export and ``torch.compile``
        (which compiles the reference step)."""
        return (
            self.fast_path
            and _ltc_fast.supports_fast_path(self)
            and not autocast_active(input.device.type)
            and input.dtype in FAST_DTYPES
            and not exporting()
            and not is_compiling()
            and not grad_needed(self, input, hx, dt if isinstance(dt, Tensor) else None)
        )

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

        Called by the sequence layers with batch-first tensors: input (B, T, I), hx (B, N),
        dt a float or (B, T, 1) without gradient, mask (B, T) bool or None. Returns
        ``(states (B, T, N) or None, h_T (B, N))``.
        """
        if not (self.fast_path and _ltc_fast.supports_fast_path(self)):
            return None
        return _ltc_fast.run_sequence(self, input, hx, dt, mask, keep_states, chunk)

    # ------------------------------------------------------------------ configs

    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments, with the wiring as its config (JSON-serialisable)."""
        return {
            "wiring": self.wiring.get_config(),
            "in_features": self.sensory_size,
            "input_mapping": self.input_mapping,
            "output_mapping": self.output_mapping,
            "ode_unfolds": self.ode_unfolds,
            "epsilon": self.epsilon,
            "solver": self.solver.name,
        }

    def extra_repr(self) -> str:
        return (
            f"in_features={self.sensory_size}, units={self.state_size}, "
            f"motor={self.motor_size}, synapses={self.synapse_count}, "
            f"ode_unfolds={self.ode_unfolds}, solver={self.solver!r}"
        )
