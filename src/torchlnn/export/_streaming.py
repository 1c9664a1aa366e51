"""A stateful controller for control loops: ``reset()`` once, then ``step(observation, dt)``."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from torch import Tensor, nn

from ._step import StepModule, StepProtocol, shape_text


class StreamingController:
    """Runs a torchlnn model one observation at a time, keeping its state between calls.

    Feeding the observations of a sequence one by one, each with its elapsed time, returns the
    same outputs as one call of the layer on the whole sequence with those ``timespans``. They
    agree to float32 rounding, because the layer computes the input terms of many steps in one
    batched call.
    Steps run without gradient tracking, in the model's current mode: call ``model.eval()``
    first when it has dropout.

    Example::

        controller = StreamingController(policy)          # a torchlnn.LTC or CfC
        controller.reset()
        while running:
            action = controller.step(read_sensors(), dt=elapsed_seconds)

    Args:
        model: a ``torchlnn.LTC`` or ``torchlnn.CfC`` layer, a cell, or any module that follows
            ``StepProtocol`` (``state_size``, ``initial_state`` and ``(x, state, dt) ->
            (output, state)``), such as a ``StepModule``.
        encoder: with a torchlnn layer or cell, a per-step module applied to each observation
            first, such as a convolutional head on camera frames. Not allowed with a
            ``StepProtocol`` model, which includes its own encoder.
        batch_size: the number of independent streams stepped together (B).

    Observations are (B, ...) tensors. Without an encoder and with ``batch_size=1``, an
    observation of shape (I,) is accepted too, and its output then has no batch axis either.
    """

    def __init__(self, model: nn.Module, *, encoder: nn.Module | None = None, batch_size: int = 1):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                f"StreamingController: batch_size must be an int >= 1, got {batch_size!r}."
            )
        if isinstance(model, StepProtocol):  # a StepModule, or a model with its own step
            if encoder is not None:
                raise ValueError(
                    "StreamingController: encoder applies only to a torchlnn layer or cell; "
                    f"{type(model).__name__} already defines its own step. Put the encoder "
                    f"inside it (StepModule(layer, encoder=...))."
                )
            self.step_module: Any = model
        else:
            self.step_module = StepModule(model, encoder)
        self.batch_size = batch_size
        self.state_size = int(self.step_module.state_size)
        self._state: Tensor | None = None

        self._model = model

    @property
    def _cell_step(self) -> bool:
        """Return whether a step calls the cell, whose forward takes its fast single step.

        At batch 1 that is several times faster than StepModule's reference step. Mixed
        memory, or ``fast_path = False`` on the layer or the cell, keeps the reference.
        """
        step = self.step_module
        return (
            isinstance(step, StepModule)
            and step.lstm is None
            and getattr(self._model, "fast_path", True)
            and getattr(step.cell, "fast_path", False)
        )

    @property
    def state(self) -> Tensor | None:
        """The current state (B, S), or None before the first ``reset``."""
        return self._state

    def reset(self, state: Tensor | None = None) -> None:
        """Start a new episode from zeros, or from ``state`` of shape (B, S) (or (S,) if B = 1)."""
        if state is None:
            self._state = self.step_module.initial_state(self.batch_size)
            return
        if not isinstance(state, Tensor):
            raise TypeError(
                f"StreamingController.reset: state must be a tensor of shape "
                f"({self.batch_size}, {self.state_size}), got {type(state).__name__}."
            )
        if self.batch_size == 1 and state.shape == (self.state_size,):
            state = state.unsqueeze(0)  # (S,) -> (1, S)
        if state.shape != (self.batch_size, self.state_size):
            raise ValueError(
                f"StreamingController.reset: state must have shape ({self.batch_size}, "
                f"{self.state_size}) (batch_size, state size), got {shape_text(state.shape)}. "
                f"With mixed memory the state is h and c concatenated (2N values per sample)."
            )
        self._state = state.detach().clone()

    def step(self, observation: Tensor, dt: float | Tensor = 1.0) -> Tensor:
        """Advance by one observation and return the model's output.

        Args:
            observation: (B, ...), or one observation without the batch axis when B = 1.
            dt: the time elapsed since the previous observation, in the unit the model was
                trained with: a number, or a tensor of shape (), (B,) or (B, 1).

        Returns:
            the output (B, O), or (O,) for an observation without the batch axis.
        """
        if self._state is None:
            self.reset()
        if not isinstance(observation, Tensor):
            raise TypeError(
                f"StreamingController.step: observation must be a tensor, got "
                f"{type(observation).__name__}."
            )
        x, unbatched = self._batch_observation(observation)
        elapsed = self._elapsed_time(dt, like=self._state)

        with torch.no_grad():
            if self._cell_step:
                step = self.step_module
                u = step.encoder(x) if step.encoder is not None else x  # (B, ...) -> (B, I)
                _, self._state = step.cell(u, self._state, elapsed)
                output = step.output(self._state)
            else:
                output, self._state = self.step_module(x, self._state, elapsed)
        return output.squeeze(0) if unbatched else output

    def _batch_observation(self, observation: Tensor) -> tuple[Tensor, bool]:
        """Return the observation as (B, ...) and whether it came without the batch axis."""
        step = self.step_module
        plain = isinstance(step, StepModule) and step.encoder is None
        # The observation rank is known only without an encoder (1: a feature vector).
        unbatched = plain and observation.dim() == 1
        x = observation.unsqueeze(0) if unbatched else observation  # (I,) -> (1, I)
        if plain and (x.dim() != 2 or x.shape[-1] != step.input_size):
            raise ValueError(
                f"StreamingController.step: observation must have shape ({self.batch_size}, "
                f"{step.input_size}) or ({step.input_size},) when batch_size is 1, got "
                f"{shape_text(observation.shape)}."
            )
        if x.shape[0] != self.batch_size:
            raise ValueError(
                f"StreamingController.step: expected {self.batch_size} observations along the "
                f"first axis (batch_size), got shape {shape_text(observation.shape)}."
            )
        return x, unbatched

    def _elapsed_time(self, dt: Any, like: Tensor) -> Tensor:
        """Return ``dt`` as a (B, 1) tensor of ``like``'s dtype, raising on invalid values."""
        batch = self.batch_size
        if isinstance(dt, Tensor):
            if dt.numel() == 1 and dt.dim() <= 1:
                elapsed = dt.reshape(1, 1).expand(batch, 1)
            elif dt.shape in ((batch,), (batch, 1)):
                elapsed = dt.reshape(batch, 1)  # (B,) or (B, 1) -> (B, 1)
            else:
                raise ValueError(
                    f"StreamingController.step: dt must be a number or a tensor of shape (), "
                    f"({batch},) or ({batch}, 1), got {shape_text(dt.shape)}."
                )
            if torch.isnan(elapsed).any() or (elapsed < 0).any():
                raise ValueError(
                    f"StreamingController.step: dt must be non-negative and not NaN, got "
                    f"{elapsed.flatten().tolist()}."
                )
            return elapsed.to(device=like.device, dtype=like.dtype)
        if isinstance(dt, numbers.Real) and not isinstance(dt, bool):
            if math.isnan(dt) or dt < 0:
                raise ValueError(
                    f"StreamingController.step: dt must be non-negative and not NaN, got {dt}."
                )
            return torch.full((batch, 1), float(dt), device=like.device, dtype=like.dtype)
        raise TypeError(
            f"StreamingController.step: dt must be a number or a tensor, got {type(dt).__name__}."
        )
