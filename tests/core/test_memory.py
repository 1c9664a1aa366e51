"""Memory grows linearly with sequence length in training and stays flat in inference."""

from __future__ import annotations

import warnings

import torch
from torch.profiler import ProfilerActivity, profile

import torchlnn


def peak_cpu_bytes(function) -> int:
    """Return the peak of the running total of CPU bytes allocated while ``function`` runs.

    The profiler records each operator's own allocations and frees; summing them in start-time
    order gives the live total at operator granularity.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the profiler warns about unsupported features
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as recorded:
            function()
    total = peak = 0
    for event in sorted(recorded.events(), key=lambda event: event.time_range.start):
        total += event.self_cpu_memory_usage
        peak = max(peak, total)
    return peak


def saved_for_backward_bytes(model, x) -> int:
    """Return the bytes of all tensors autograd keeps for the backward pass of ``model(x)``."""
    sizes = []

    def pack(tensor):
        sizes.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output, _ = model(x)
    del output
    return sum(sizes)


def test_training_memory_grows_linearly():
    model = torchlnn.LTC(16, 32, ode_unfolds=6)
    short = saved_for_backward_bytes(model, torch.randn(32, 256, 16))
    long = saved_for_backward_bytes(model, torch.randn(32, 512, 16))
    assert long / short < 2.3


def test_inference_without_sequences_keeps_no_per_step_memory():
    model = torchlnn.LTC(16, 32, ode_unfolds=6, return_sequences=False)
    short_input, long_input = torch.randn(32, 256, 16), torch.randn(32, 512, 16)

    def infer(x):
        def run():
            with torch.no_grad():
                model(x)

        return run

    assert peak_cpu_bytes(infer(long_input)) / peak_cpu_bytes(infer(short_input)) < 1.3
