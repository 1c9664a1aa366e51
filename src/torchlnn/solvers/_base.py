"""The solver interface shared by every LTC solver.

An LTC layer's membrane equation has the form

    C_m * dv/dt = numerator(v) - denominator(v) * v

where ``numerator(v) = g_leak * v_leak + sum_j g_j(v) * E_j`` and
``denominator(v) = g_leak + sum_j g_j(v)`` collect the leak and the synaptic conductances
``g_j(v)`` with their reversal potentials ``E_j`` (see ``torchlnn.cells.LTCCell``). The cell
writes this right-hand side once, as a function ``terms(v) -> (numerator, denominator)``; a
solver decides how to advance ``v`` over an elapsed time ``dt`` with it.

Shapes: ``v``, ``numerator`` and ``denominator`` are (B, N); ``C_m`` is (N,); ``dt`` is a float
or a (B, 1) tensor, one elapsed time per sample.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from torchlnn._compat import is_tracing_or_compiling

Terms = Callable[[Tensor], "tuple[Tensor, Tensor]"]
TimeStep = float | Tensor


def vector_field(terms: Terms, cm: Tensor, v: Tensor) -> Tensor:
    """Return dv/dt = (numerator(v) - denominator(v) * v) / C_m."""
    numerator, denominator = terms(v)
    return (numerator - denominator * v) / cm


class Solver:
    """Advances the LTC membrane equation over one input step.

    Attributes:
        name: the string that selects this solver in ``LTCCell(solver=...)``.
        order: the global order of accuracy in the sub-step length.
    """

    name: str = ""
    order: int = 0

    def integrate(self, terms: Terms, cm: Tensor, v: Tensor, dt: TimeStep, unfolds: int) -> Tensor:
        """Return the state after an elapsed time ``dt``, taking ``unfolds`` sub-steps."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ExplicitSolver(Solver):
    """A fixed-step explicit Runge-Kutta solver with a stability check.

    Explicit methods are stable on the LTC equation only while each sub-step is short compared
    with the fastest membrane time constant: ``h * denominator / C_m`` must stay below
    ``stability_limit`` (2 for Euler, about 2.79 for RK4, on the linear decay part). When a
    sub-step exceeds it, the solver warns. It raises FloatingPointError instead of returning
    a state that is non-finite or, after such a warning, diverging (see ``_diverged``).
    """

    stability_limit: float = math.inf

    def step(self, terms: Terms, cm: Tensor, v: Tensor, h: TimeStep) -> Tensor:
        """Return the state after one sub-step of length ``h``."""
        raise NotImplementedError

    def integrate(self, terms: Terms, cm: Tensor, v: Tensor, dt: TimeStep, unfolds: int) -> Tensor:
        h = dt / unfolds
        unstable = self._check_stability(terms, cm, v, h, dt, unfolds)
        start = v
        for _ in range(unfolds):
            v = self.step(terms, cm, v, h)
        if not torch.isfinite(v).all():
            problem = "non-finite states"
        elif unstable and _diverged(terms, start, v):
            problem = "diverging states, far outside the range that the equation allows"
        else:
            return v
        raise FloatingPointError(
            f"The {self.name!r} solver produced {problem} (dt up to {_max_value(dt):g}, "
            f"ode_unfolds={unfolds}). Explicit solvers diverge when a sub-step is long "
            f"compared with the membrane time constant. Use solver='fused' (stable for any "
            f"dt), or increase ode_unfolds."
        )

    def _check_stability(self, terms, cm, v, h, dt, unfolds) -> bool:
        """Warn, and return True, when a sub-step exceeds the stability limit."""
        if is_tracing_or_compiling() or v.numel() == 0:  # an empty batch has no sub-step
            return False
        with torch.no_grad():
            _, denominator = terms(v)
            stiffness = float((denominator / cm * h).max())
        if stiffness > self.stability_limit:
            warnings.warn(
                f"The {self.name!r} solver is likely unstable here: a sub-step of "
                f"dt/ode_unfolds up to {_max_value(dt) / unfolds:g} times the fastest decay rate "
                f"(g_leak + synaptic conductances) / C_m gives {stiffness:.3g}, above its "
                f"stability limit {self.stability_limit:g}. Use solver='fused' or increase "
                f"ode_unfolds.",
                RuntimeWarning,
                stacklevel=4,
            )
            return True
        return False


# How far beyond every value that the exact solution can reach a state may go before the
# explicit steps count as diverging.
DIVERGENCE_FACTOR = 10.0


def _diverged(terms: Terms, start: Tensor, v: Tensor) -> bool:
    """Return whether the state ``v`` reached from ``start`` has left the equation's range.

    The right-hand side pulls each neuron towards ``numerator / denominator``, an average of
    the leak and reversal potentials with positive weights. So the exact solution stays
    within the largest magnitude of the start state and of those targets, and a stable
    explicit step overshoots a target by less than the distance to it. A state more than
    ``DIVERGENCE_FACTOR`` times that magnitude comes from unstable steps.
    """
    with torch.no_grad():
        bound = start.abs().max()
        for state in (start, v):
            numerator, denominator = terms(state)
            bound = torch.maximum(bound, (numerator / denominator).abs().max())
        return bool(v.abs().max() > DIVERGENCE_FACTOR * bound)


def _max_value(dt: TimeStep) -> float:
    return float(dt.max()) if isinstance(dt, Tensor) else float(dt)
