"""Resources of the fast paths: memory, compilation, threads.

Speed itself is measured in ``benchmarks/``, never in unit tests; these tests check the
properties that make the fast paths fast and that a regression would silently lose.
"""

from __future__ import annotations

import threading

import pytest
import torch
import torch._dynamo
from torch.profiler import ProfilerActivity, profile

import torchlnn
from torchlnn.cells import LTCCell, WiredCfCCell
from torchlnn.cells._fast import FAST_PATHS_SUPPORTED
from torchlnn.wirings import NCP, AutoNCP

pytestmark = pytest.mark.skipif(
    not FAST_PATHS_SUPPORTED, reason="this PyTorch runs only the reference path"
)


def peak_bytes(function) -> int:
    """Return the peak of live CPU tensor memory allocated while ``function`` runs.

    The profiler attributes each allocation to the operation that made it; the running sum
    of the operations' own allocations, in start order, traces the live memory.
    """
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        function()
    total = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        if event.name == "[memory]":
            total += event.cpu_memory_usage
        else:
            total += event.self_cpu_memory_usage
        peak = max(peak, total)
    return peak


def kept_for_backward(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Return the bytes of the tensors that autograd keeps for the backward of ``model(x)``,
    parameters excluded (they exist anyway)."""
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x)
    return sum(storages.values())


@pytest.mark.parametrize(
    "make",
    [
        lambda: torchlnn.LTC(8, AutoNCP(32, 4, seed=1), return_sequences=False),
        lambda: torchlnn.CfC(8, 32, return_sequences=False),
        lambda: torchlnn.CfC(8, AutoNCP(32, 4, seed=1), return_sequences=False),
    ],
    ids=["ltc", "cfc", "wired-cfc"],
)
def test_inference_memory_does_not_grow_with_length(make):
    torch.manual_seed(0)
    model = make()
    batch, short, long = 16, 60, 600
    peaks = []
    for steps in (short, long):
        x = torch.randn(batch, steps, 8)

        def infer(x=x):
            with torch.no_grad():
                model(x)

        peaks.append(peak_bytes(infer))
    every_state = batch * long * model.state_size * 4
    assert peaks[1] < peaks[0] + every_state // 4, peaks


def test_ltc_keeps_ten_times_less_for_backward_than_reference():
    torch.manual_seed(0)
    model = torchlnn.LTC(8, AutoNCP(24, 4, seed=1))
    x = torch.randn(8, 30, 8)
    fast = kept_for_backward(model, x)
    model.fast_path = False
    reference = kept_for_backward(model, x)
    assert fast * 10 <= reference, (fast, reference)


# Dynamo reads .grad of the layer's outputs when it resumes after the graph break; PyTorch
# warns about that read on non-leaf tensors. The warning comes from Dynamo, not torchlnn.
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
@pytest.mark.parametrize(
    "make",
    [lambda: torchlnn.CfC(6, 8), lambda: torchlnn.LTC(6, NCP(4, 3, 2, 2, 2, 3, 2))],
    ids=["cfc", "ltc"],
)
def test_compiled_model_does_not_recompile_per_length(make):
    graphs = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    torch._dynamo.reset()
    model = make()
    compiled = torch.compile(model, backend=counting_backend, dynamic=True)
    counts = []
    for steps in (5, 9, 17, 33):
        output, _ = compiled(torch.randn(2, steps, 6))
        expected, _ = model(torch.randn(2, steps, 6))
        assert output.shape == expected.shape
        counts.append(len(graphs))
    torch._dynamo.reset()
    assert counts[0] > 0
    assert counts[-1] == counts[0], counts


def test_step_threads_restored_after_forward_and_error():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = torchlnn.LTC(4, NCP(4, 3, 2, 2, 2, 3, 2))
        model(torch.randn(2, 5, 4))[0].sum().backward()
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError):
            model(torch.randn(2, 5, 4), timespans=torch.full((2, 5), float("nan")))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize(
    "make",
    [
        lambda: LTCCell(NCP(6, 4, 2, 3, 2, 3, 2, seed=2), in_features=5),
        lambda: WiredCfCCell(5, NCP(6, 4, 2, 3, 2, 3, 2, seed=2)),
    ],
    ids=["ltc", "wired-cfc"],
)
def test_control_steps_from_several_threads_agree(make):
    torch.manual_seed(0)
    cell = make()
    inputs = [torch.randn(1, 5) for _ in range(4)]
    states = [torch.randn(1, cell.state_size) for _ in range(4)]
    with torch.no_grad():
        expected = [cell(x, h)[1] for x, h in zip(inputs, states)]
    results: dict[int, list[torch.Tensor]] = {}

    def worker(index: int) -> None:
        with torch.no_grad():
            results[index] = [cell(inputs[index], states[index])[1] for _ in range(200)]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index in range(4):
        for result in results[index]:
            torch.testing.assert_close(result, expected[index], rtol=0, atol=0)


# torch.jit.trace warns about its own deprecation and about Python values it records as
# constants; neither comes from the code under test.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize(
    "make",
    [lambda: torchlnn.LTC(4, NCP(4, 3, 2, 2, 2, 3, 2)), lambda: torchlnn.CfC(4, 6)],
    ids=["ltc", "cfc"],
)
def test_tracing_and_export_use_reference_operations(make):
    torch.manual_seed(0)
    model = make()
    x = torch.randn(2, 3, 4)
    with torch.no_grad():
        expected, _ = model(x)
        traced = torch.jit.trace(model, (x,))
    assert "PythonOp" not in str(traced.graph)  # no autograd Function of a fast path
    torch.testing.assert_close(traced(x)[0], expected)

    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x)[0], expected)
