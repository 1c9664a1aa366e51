"""compile_c and CStep: the generated C, built as a shared library and called from Python."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import torchlnn
from torchlnn.export import CStep, StreamingController, compile_c, to_c

from .helpers import INPUT_SIZE, build, driver_ncp, perturbed
from .test_c import layer_reference, random_run

COMPILER = shutil.which("gcc") or shutil.which("cc")
needs_compiler = pytest.mark.skipif(COMPILER is None, reason="no C compiler (gcc or cc) on PATH")

TOLERANCE = 1e-5


def run_steps(step: CStep, inputs: np.ndarray, dt: np.ndarray) -> np.ndarray:
    return np.stack([step(x, float(d)) for x, d in zip(inputs, dt)])


@needs_compiler
@pytest.mark.parametrize(
    "name", ["ltc-fused-ncp", "cfc-wired-no_gate-mixed", "cfc-wired-pure-proj"]
)
def test_cstep_matches_layer_long_run(name, tmp_path):
    model = build(name)
    step = compile_c(to_c(model, tmp_path))
    inputs, dt = random_run(step.input_size)
    expected_outputs, expected_state = layer_reference(model, inputs, dt)
    np.testing.assert_allclose(
        run_steps(step, inputs, dt), expected_outputs, rtol=0, atol=TOLERANCE
    )
    np.testing.assert_allclose(step.state, expected_state, rtol=0, atol=TOLERANCE)


@needs_compiler
def test_cstep_matches_controller_and_resets(tmp_path):
    torch.manual_seed(0)
    model = perturbed(torchlnn.LTC(32, driver_ncp()))
    step = compile_c(to_c(model, tmp_path, "driver"))
    controller = StreamingController(model)
    inputs, dt = random_run(32, seed=3)
    inputs, dt = inputs[:200], dt[:200]

    for _episode in range(2):  # the second episode checks that reset() restores zeros
        step.reset()
        controller.reset()
        for x, d in zip(inputs, dt):
            ours = step(torch.from_numpy(x), float(d))
            expected = controller.step(torch.from_numpy(x), float(d))
            np.testing.assert_allclose(ours, expected.numpy().reshape(-1), atol=TOLERANCE)
    assert step(inputs[0]).dtype == np.float32


@needs_compiler
def test_cstep_state_set_and_continued(tmp_path):
    model = build("ltc-fused-ncp")
    step = compile_c(to_c(model, tmp_path))
    inputs, dt = random_run(INPUT_SIZE)
    first = run_steps(step, inputs[:10], dt[:10])
    saved = step.state
    later = run_steps(step, inputs[10:20], dt[10:20])

    step.reset()
    assert not step.state.any()
    step.state = saved
    np.testing.assert_array_equal(run_steps(step, inputs[10:20], dt[10:20]), later)
    assert first.shape == (10, step.output_size)


@needs_compiler
def test_cstep_rejects_invalid_input(tmp_path):
    step = compile_c(to_c(build("ltc-fused-ncp"), tmp_path))
    with pytest.raises(ValueError, match=rf"shape \({INPUT_SIZE},\), got \(2, {INPUT_SIZE}\)"):
        step(np.zeros((2, INPUT_SIZE)))
    with pytest.raises(ValueError, match=r"got \(\)"):
        step(0.5)
    with pytest.raises(ValueError, match="dt >= 0, got -1.0"):
        step(np.zeros(INPUT_SIZE), dt=-1.0)
    with pytest.raises(ValueError, match="dt >= 0, got nan"):
        step(np.zeros(INPUT_SIZE), dt=float("nan"))
    with pytest.raises(ValueError, match="detached"):
        step(torch.zeros(INPUT_SIZE, requires_grad=True))
    with pytest.raises(ValueError, match=r"state must have shape"):
        step.state = np.zeros(step.state_size + 1)


def test_compile_c_missing_compiler(tmp_path):
    export = to_c(build("ltc-fused-ncp"), tmp_path)
    with pytest.raises(RuntimeError, match="'no-such-compiler-xyz' was not found on PATH"):
        compile_c(export, compiler="no-such-compiler-xyz")


@needs_compiler
def test_compile_c_compiler_error(tmp_path):
    export = to_c(build("ltc-fused-ncp"), tmp_path)
    with pytest.raises(RuntimeError, match="failed with exit code"):
        compile_c(export, compiler=COMPILER, flags=["-std=c99", "--no-such-flag-xyz"])


def test_compile_c_rejects_wrong_arguments(tmp_path):
    model = build("ltc-fused-ncp")
    with pytest.raises(TypeError, match=r"got LTC\. Call compile_c\(to_c\(model, folder\)\)"):
        compile_c(model)
    with pytest.raises(TypeError, match=r"flags=\['-O3'\]"):
        compile_c(to_c(model, tmp_path), flags="-O3")
