"""C99: the generated step, compiled with the system compiler, against PyTorch on long runs."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

import torchlnn
from torchlnn.export import StepModule, to_c, write_c_runner

from .helpers import INPUT_SIZE, LAYERS, build, driver_ncp, perturbed, small_ncp

COMPILER = shutil.which("gcc") or shutil.which("cc")
pytestmark = pytest.mark.skipif(COMPILER is None, reason="no C compiler (gcc or cc) on PATH")

STEPS = 1000
TOLERANCE = 1e-5
WARNINGS_AS_ERRORS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Werror"]


def compile_runner(export, folder):
    runner = write_c_runner(export)
    binary = folder / f"{export.name}_runner"
    command = [COMPILER, *WARNINGS_AS_ERRORS, str(export.source), str(runner), "-lm"]
    result = subprocess.run([*command, "-o", str(binary)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return binary


def run_c(binary, folder, inputs: np.ndarray, dt: np.ndarray, export):
    """Run the compiled step over a sequence; return (outputs (T, O), final state (S,))."""
    steps = inputs.shape[0]
    records = np.concatenate([dt.reshape(steps, 1), inputs], axis=1).astype(np.float32)
    (folder / "input.bin").write_bytes(np.int32(steps).tobytes() + records.tobytes())
    subprocess.run(
        [str(binary), "run", str(folder / "input.bin"), str(folder / "output.bin")], check=True
    )
    values = np.fromfile(folder / "output.bin", dtype=np.float32)
    outputs = values[: steps * export.output_size].reshape(steps, export.output_size)
    return outputs, values[steps * export.output_size :]


def layer_reference(model, inputs: np.ndarray, dt: np.ndarray):
    """Run the layer on one batch-first sequence in one call; return (outputs, final state).

    The layer's layout options are switched to batch-first with every step's output for the
    call, then restored.
    """
    steps = inputs.shape[0]
    x = torch.from_numpy(inputs).reshape(1, steps, -1)
    timespans = torch.from_numpy(dt).reshape(1, steps, 1)
    layout = model.batch_first, model.return_sequences
    model.batch_first, model.return_sequences = True, True
    try:
        with torch.no_grad():
            output, h_n = model(x, timespans=timespans)
    finally:
        model.batch_first, model.return_sequences = layout
    state = torch.cat(h_n, -1) if isinstance(h_n, tuple) else h_n
    return output[0].numpy(), state[0].numpy()


def random_run(input_size: int, seed: int = 0):
    generator = np.random.default_rng(seed)
    inputs = generator.standard_normal((STEPS, input_size)).astype(np.float32)
    dt = (0.05 + 0.5 * generator.random(STEPS)).astype(np.float32)
    return inputs, dt


def check_against_torch(model, tmp_path, name="lnn"):
    export = to_c(model, tmp_path, name)
    binary = compile_runner(export, tmp_path)
    inputs, dt = random_run(export.input_size)
    c_outputs, c_state = run_c(binary, tmp_path, inputs, dt, export)
    expected_outputs, expected_state = layer_reference(model, inputs, dt)
    np.testing.assert_allclose(c_outputs, expected_outputs, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(c_state, expected_state, rtol=0, atol=TOLERANCE)
    return export


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_c_matches_torch_over_long_run(name, tmp_path):
    check_against_torch(build(name), tmp_path)


@pytest.mark.parametrize("solver", ["fused", "euler", "rk4"])
def test_c_driver_circuit_matches_torch(solver, tmp_path):
    torch.manual_seed(0)
    model = perturbed(torchlnn.LTC(32, driver_ncp(), solver=solver))
    export = check_against_torch(model, tmp_path, name=f"driver_{solver}")
    assert (export.input_size, export.output_size, export.state_size) == (32, 1, 19)


@pytest.mark.parametrize("activation", ["lecun_tanh", "tanh", "relu", "gelu", "silu"])
def test_c_cfc_activations_match_torch(activation, tmp_path):
    torch.manual_seed(0)
    model = perturbed(torchlnn.CfC(INPUT_SIZE, 6, activation=activation, backbone_units=10))
    check_against_torch(model, tmp_path)


def test_c_folds_masks_into_synapse_lists(tmp_path):
    wiring = driver_ncp()
    model = torchlnn.LTC(32, wiring)
    source = to_c(model, tmp_path, "driver").source.read_text()
    synapses = re.search(r"driver_synapse_w\[(\d+)\]", source)
    sensory = re.search(r"driver_sensory_w\[(\d+)\]", source)
    assert int(synapses.group(1)) == wiring.synapse_count
    assert int(sensory.group(1)) == wiring.sensory_synapse_count
    assert re.search(r"mask\w*\[", source) is None  # no mask array: the masks are folded in


def test_c_source_is_self_contained(tmp_path):
    export = to_c(build("cfc-wired-no_gate-mixed"), tmp_path, "policy")
    source = export.source.read_text()
    includes = set(re.findall(r'#include [<"]([^>"]+)[>"]', source))
    assert includes == {"policy.h", "math.h", "stddef.h", "stdint.h"}
    for forbidden in ("malloc", "calloc", "free(", "printf", "static float "):
        assert forbidden not in source.replace("static float policy_sigmoid", "")
    arrays = re.findall(r"^static (const )?\w+ \w+\[", source, flags=re.MULTILINE)
    assert arrays and all(const == "const " for const in arrays)


def test_c_state_layout_matches_step_module(tmp_path):
    # A state written by PyTorch continues correctly in C: same order, h then c.
    model = build("ltc-rk4-mixed")
    export = to_c(model, tmp_path, "lnn")
    assert export.state_size == StepModule(model).state_size == 12
    assert export.state_bytes == 48


def test_c_adaptive_solver_rejected(tmp_path):
    model = torchlnn.LTC(INPUT_SIZE, small_ncp(), solver="adaptive")
    with pytest.raises(ValueError, match=r"'adaptive'.*unbounded"):
        to_c(model, tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["3policy", "my-policy", "", "a" * 41])
def test_c_invalid_name_rejected(name, tmp_path):
    with pytest.raises(ValueError, match="C identifier"):
        to_c(build("ltc-fused-ncp"), tmp_path, name)


def test_c_missing_folder_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        to_c(build("ltc-fused-ncp"), tmp_path / "missing")


def test_c_float64_model_written_as_float32(tmp_path):
    model = build("cfc-wired-pure-proj").double()
    export = to_c(model, tmp_path)
    assert "double" not in export.source.read_text()
    assert next(model.parameters()).dtype == torch.float64  # the model itself is unchanged
