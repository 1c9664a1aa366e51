"""Explicit Runge-Kutta solvers: Euler (order 1) and the classical RK4 (order 4)."""

from __future__ import annotations

from torch import Tensor

from ._base import ExplicitSolver, Terms, TimeStep, vector_field


class Euler(ExplicitSolver):
    """Explicit Euler: ``v_next = v + h * f(v)``. Stable while ``h * max decay rate < 2``."""

    name = "euler"
    order = 1
    stability_limit = 2.0

    def step(self, terms: Terms, cm: Tensor, v: Tensor, h: TimeStep) -> Tensor:
        return v + h * vector_field(terms, cm, v)


class RK4(ExplicitSolver):
    """The classical fourth-order Runge-Kutta method.

        k1 = f(v),  k2 = f(v + h/2 k1),  k3 = f(v + h/2 k2),  k4 = f(v + h k3)
        v_next = v + h/6 (k1 + 2 k2 + 2 k3 + k4)

    Stable while ``h * max decay rate`` stays below about 2.79.
    """

    name = "rk4"
    order = 4
    stability_limit = 2.785

    def step(self, terms: Terms, cm: Tensor, v: Tensor, h: TimeStep) -> Tensor:
        k1 = vector_field(terms, cm, v)
        k2 = vector_field(terms, cm, v + 0.5 * h * k1)
        k3 = vector_field(terms, cm, v + 0.5 * h * k2)
        k4 = vector_field(terms, cm, v + h * k3)
        return v + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
