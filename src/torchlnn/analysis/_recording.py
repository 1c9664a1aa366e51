"""Find the recurrent layer of a model and record its calls during a forward pass.

A model is either a recurrent layer itself (``torchlnn.LTC``, ``torchlnn.CfC``,
``torch.nn.LSTM``, ``torch.nn.GRU``, ``torch.nn.RNN``) or a module that contains one, such as
a driving policy made of a per-frame convolutional head and an LTC. Recording never changes what
the model returns: a liquid layer is run through ``forward_with_states``, which computes the
same output as ``forward``, and a ``torch.nn`` recurrent layer is observed with a forward hook.

Shape letters: B samples, T steps, F input features of the recurrent layer, N neurons.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from torchlnn.layers._inputs import check_input, check_mask, check_state, check_timespans
from torchlnn.layers._sequence import LiquidSequence

RECURRENT_LAYERS = (LiquidSequence, nn.RNNBase)


def find_recurrent_layer(model: nn.Module, layer: nn.Module | None = None) -> nn.Module:
    """Return the recurrent layer to record: ``layer`` if given, else the one ``model`` contains.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, or ``layer`` is not a recurrent layer.
        ValueError: ``model`` contains no recurrent layer, or several and ``layer`` is None.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if layer is not None:
        if not isinstance(layer, RECURRENT_LAYERS):
            raise TypeError(
                f"layer must be a torchlnn.LTC, torchlnn.CfC or torch.nn recurrent layer "
                f"(LSTM, GRU, RNN), got {type(layer).__name__}."
            )
        if not any(module is layer for module in model.modules()):
            raise ValueError(
                f"layer ({type(layer).__name__}) is not a submodule of the model "
                f"({type(model).__name__}): pass a layer that the model calls."
            )
        return layer
    if isinstance(model, RECURRENT_LAYERS):
        return model

    found = [module for module in model.modules() if isinstance(module, RECURRENT_LAYERS)]
    if not found:
        raise ValueError(
            f"{type(model).__name__} contains no recurrent layer (torchlnn.LTC, torchlnn.CfC, "
            f"torch.nn.LSTM, GRU or RNN), so it has no neuron states to record. A feed-forward "
            f"model can still be analysed with the attention and input-sensitivity functions."
        )
    if len(found) > 1:
        names = [name for name, module in model.named_modules() if module in found]
        raise ValueError(
            f"{type(model).__name__} contains {len(found)} recurrent layers ({names}); pass the "
            f"one to record as layer=model.<name>."
        )
    return found[0]


def forward_arguments(**arguments) -> dict:
    """Return the keyword arguments that were given (not None), to pass on to a model."""
    return {name: value for name, value in arguments.items() if value is not None}


@dataclass
class LayerCall:
    """One call of a recurrent layer, with its arguments and states in batch-first layout.

    Attributes:
        input: the layer's input, (B, T, F).
        states: every neuron's state after every step, (B, T, N). For a ``torch.nn`` recurrent
            layer these are the top layer's hidden states (both directions concatenated).
        step_mask: (B, T) bool, True at real steps, or None when every step is real.
        dt: elapsed time of each step: a float or a (B, T, 1) tensor (liquid layers only).
        h0: the initial state (B, N) (liquid layers only).
        c0: the initial memory (B, N) with ``mixed_memory=True``, else None.
    """

    input: Tensor
    states: Tensor
    step_mask: Tensor | None
    dt: float | Tensor | None = None
    h0: Tensor | None = None
    c0: Tensor | None = None


def _liquid_call(layer: LiquidSequence, args, kwargs, result) -> LayerCall:
    """Convert the arguments and states of one liquid-layer call to batch-first tensors."""
    names = ("input", "hx", "timespans")
    arguments = dict(zip(names, args))
    arguments.update(kwargs)
    owner = type(layer).__name__
    x, batched = check_input(arguments["input"], layer.input_size, layer.batch_first, owner)
    batch, steps, _ = x.shape
    dt = check_timespans(
        arguments.get("timespans"), batch, steps, layer.batch_first, batched, x, owner
    )  # float or (B, T, 1)
    step_mask = check_mask(
        arguments.get("lengths"),
        arguments.get("mask"),
        batch,
        steps,
        layer.batch_first,
        batched,
        x.device,
        owner,
    )  # (B, T) or None
    h0, c0 = check_state(
        arguments.get("hx"), batch, layer.state_size, batched, layer.mixed_memory, x, owner
    )  # (B, N) each

    states = result.states
    if not batched:
        states = states.unsqueeze(0)  # (T, N) -> (1, T, N)
    elif not layer.batch_first:
        states = states.transpose(0, 1)  # (T, B, N) -> (B, T, N)
    return LayerCall(x, states, step_mask, dt, h0, c0)


def _torch_rnn_call(layer: nn.RNNBase, args, output) -> LayerCall:
    """Convert the input and hidden states of one ``torch.nn`` recurrent-layer call."""
    input, hidden = args[0], output[0]
    if isinstance(input, nn.utils.rnn.PackedSequence):
        input, lengths = nn.utils.rnn.pad_packed_sequence(input, batch_first=True)
        hidden, _ = nn.utils.rnn.pad_packed_sequence(hidden, batch_first=True)
        steps = input.shape[1]
        step_mask = torch.arange(steps) < lengths.unsqueeze(1)  # (B, T)
        return LayerCall(input, hidden, step_mask.to(input.device))
    if input.dim() == 2:
        return LayerCall(input.unsqueeze(0), hidden.unsqueeze(0), None)  # (T, F) -> (1, T, F)
    if not layer.batch_first:
        input = input.transpose(0, 1)  # (T, B, F) -> (B, T, F)
        hidden = hidden.transpose(0, 1)  # (T, B, H) -> (B, T, H)
    return LayerCall(input, hidden, None)


@contextlib.contextmanager
def record_calls(layer: nn.Module) -> Iterator[list[LayerCall]]:
    """Record every call of ``layer`` made inside the ``with`` block, in call order.

    A liquid layer's ``forward`` is replaced, for the duration of the block, by a function that
    calls ``forward_with_states`` and returns the same ``(output, h_n)``; a direct call of
    ``forward_with_states`` is recorded too. A ``torch.nn`` recurrent layer gets a forward
    hook. Both are removed when the block exits.
    """
    calls: list[LayerCall] = []
    if isinstance(layer, LiquidSequence):
        original = layer.forward_with_states

        def forward_with_states(*args, **kwargs):
            result = original(*args, **kwargs)
            calls.append(_liquid_call(layer, args, kwargs, result))
            return result

        def forward(*args, **kwargs):
            result = forward_with_states(*args, **kwargs)
            return result.output, result.h_n

        # Instance attributes shadow the class methods until they are deleted.
        layer.forward_with_states = forward_with_states
        layer.forward = forward
        try:
            yield calls
        finally:
            del layer.forward
            del layer.forward_with_states
    elif isinstance(layer, nn.RNNBase):

        def hook(module, args, output):
            calls.append(_torch_rnn_call(module, args, output))

        handle = layer.register_forward_hook(hook)
        try:
            yield calls
        finally:
            handle.remove()
    else:
        raise TypeError(f"cannot record calls of {type(layer).__name__}: not a recurrent layer.")


def concatenate_calls(calls: list[LayerCall], layer: nn.Module) -> LayerCall:
    """Join the calls of a model that runs its layer once per step (streaming) along time.

    Several calls are joined only when each one continues the previous one, which is how a
    streaming model calls its layer: same batch size, one call per step or chunk. The initial
    state is the first call's.
    """
    if not calls:
        raise ValueError(
            f"the model never called its recurrent layer ({type(layer).__name__}) during the "
            f"forward pass, so there are no states to record. Check that the input reaches it."
        )
    if len(calls) == 1:
        return calls[0]
    batches = {call.input.shape[0] for call in calls}
    if len(batches) != 1:
        raise ValueError(
            f"the model called its recurrent layer {len(calls)} times with different batch sizes "
            f"{sorted(batches)}; states can be joined only for calls that continue one sequence."
        )
    batch = batches.pop()

    def join_dt():
        if all(isinstance(call.dt, float) and call.dt == calls[0].dt for call in calls):
            return calls[0].dt
        if any(call.dt is None for call in calls):
            return None
        pieces = []
        for call in calls:
            steps = call.input.shape[1]
            if isinstance(call.dt, float):
                pieces.append(call.input.new_full((batch, steps, 1), call.dt))
            else:
                pieces.append(call.dt)
        return torch.cat(pieces, dim=1)  # (B, T, 1)

    masks = None
    if any(call.step_mask is not None for call in calls):
        masks = torch.cat(
            [
                call.step_mask
                if call.step_mask is not None
                else torch.ones(call.input.shape[:2], dtype=torch.bool, device=call.input.device)
                for call in calls
            ],
            dim=1,
        )  # (B, T)
    return LayerCall(
        input=torch.cat([call.input for call in calls], dim=1),  # (B, T, F)
        states=torch.cat([call.states for call in calls], dim=1),  # (B, T, N)
        step_mask=masks,
        dt=join_dt(),
        h0=calls[0].h0,
        c0=calls[0].c0,
    )


def previous_states(layer: LiquidSequence, call: LayerCall) -> tuple[Tensor, Tensor | None]:
    """Return ``(h_{t-1}, c_{t-1})`` for every step, each (B, T, N); ``c`` is None without memory.

    ``h_{t-1}`` is ``h0`` at the first step and the recorded state after that. With mixed memory
    the memory ``c`` is not recorded, so it is rebuilt here from ``c0`` and the recorded states,
    one step at a time, as the layer's time loop computed it.
    """
    previous = torch.cat([call.h0.unsqueeze(1), call.states[:, :-1]], dim=1)  # (B, T, N)
    if layer.lstm is None:
        return previous, None

    prepared = layer.lstm.prepare_inputs(call.input)  # (B, T, 4N)
    c = call.c0
    memories = []
    for t in range(call.input.shape[1]):
        memories.append(c)
        _, c_next = layer.lstm.advance(prepared[:, t], previous[:, t], c)
        if call.step_mask is not None:
            c_next = torch.where(call.step_mask[:, t].unsqueeze(-1), c_next, c)  # (B, N)
        c = c_next
    return previous, torch.stack(memories, dim=1)  # (B, T, N) each


def liquid_step(
    layer: LiquidSequence, x: Tensor, h: Tensor, c: Tensor | None, dt: Tensor
) -> tuple[Tensor, Tensor]:
    """Run one step of a liquid layer for a flat batch of independent (input, state) pairs.

    Args:
        layer: the liquid layer.
        x: inputs (S, F); h, c: states before the step (S, N); dt: elapsed times (S, 1).

    Returns:
        ``(start, h_new)``: the state the liquid cell starts from (``h``, or the mixed-memory
        LSTM's update of it) and the state after the step, each (S, N).
    """
    start = h
    if layer.lstm is not None:
        start, _ = layer.lstm.advance(layer.lstm.prepare_inputs(x), h, c)
    h_new = layer.rnn_cell.advance(layer.rnn_cell.prepare_inputs(x), start, dt)
    return start, h_new


def elapsed_times(call: LayerCall) -> Tensor:
    """Return the elapsed time of every step as a (B, T, 1) tensor."""
    batch, steps, _ = call.input.shape
    if isinstance(call.dt, float):
        return call.input.new_full((batch, steps, 1), call.dt)
    return call.dt
