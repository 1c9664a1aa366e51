"""Time one control step at batch 1 in every deployment form, and size the generated C.

Forms: eager PyTorch (``StepModule``, and ``StreamingController.step`` with its checks),
TorchScript, a torch.export program, ONNX Runtime, the generated C compiled with the system
compiler, and that C called from Python through ``CStep``. The models are the 19-neuron
lane-keeping circuit of the NCP paper (``NCP(12, 6, 1, 6, 4, 6, 6)`` on 32 inputs) as an LTC
and as a wired CfC, or a layer saved with ``torchlnn.save`` (``--model``). A step's time does
not depend on the weights' values.

Before timing, every form runs the same 50 observations and must agree with eager PyTorch to
1e-5. Each Python form is timed as the mean over ``--steps`` consecutive steps, feeding the
state back as a control loop does. That is repeated ``--repeats`` times, and the record keeps
the median and the minimum. PyTorch and ONNX Runtime use one thread (``--threads``), which is how a
batch-1 controller runs best and keeps the comparison with the single-threaded C fair.

    python benchmarks/deploy_step.py                      # writes benchmarks/results/...
    python benchmarks/deploy_step.py --model policy.pt --output /tmp/policy_step.json
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import torchlnn
from torchlnn import export
from torchlnn._io import write_json
from torchlnn.wirings import NCP

RESULTS = Path(__file__).resolve().parent / "results" / "deploy_step.json"
CHECK_STEPS = 50
CHECK_TOLERANCE = 1e-5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a layer saved with torchlnn.save")
    parser.add_argument("--steps", type=int, default=2000, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per form")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch and ONNX Runtime threads")
    parser.add_argument("--c-steps", type=int, default=200_000, help="steps of the C timing run")
    parser.add_argument("--output", type=Path, default=RESULTS, help="the JSON record to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and inputs")
    return parser.parse_args(argv)


def driver_models(seed: int) -> dict[str, torch.nn.Module]:
    """Return the 19-neuron lane-keeping circuit as an LTC (fused solver) and as a wired CfC."""
    torch.manual_seed(seed)
    ltc = torchlnn.LTC(32, NCP(12, 6, 1, 6, 4, 6, 6, seed=seed))
    cfc = torchlnn.CfC(32, NCP(12, 6, 1, 6, 4, 6, 6, seed=seed))
    return {"ltc-ncp19-fused": ltc.eval(), "cfc-ncp19-wired": cfc.eval()}


def time_loop(call: Callable[[int], None], steps: int, repeats: int) -> dict[str, float]:
    """Return the median and minimum microseconds per call of ``call(t)`` over ``steps``."""
    call(0)  # warm-up: first-call compilation and allocation
    per_step = []
    for _ in range(repeats):
        start = time.perf_counter()
        for t in range(steps):
            call(t)
        per_step.append((time.perf_counter() - start) / steps * 1e6)
    return {"median_us": statistics.median(per_step), "min_us": min(per_step)}


def python_forms(model, folder: Path) -> dict[str, Callable]:
    """Return each Python form as ``step(x (1, I), state (1, S), dt (1, 1)) -> (y, state)``."""
    step = export.StepModule(model).eval()
    scripted = export.to_torchscript(model, form="step")
    program = export.to_exported_program(model, form="step").module()
    onnx_path = export.to_onnx(model, folder / "step.onnx", form="step")

    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(onnx_path), options, providers=["CPUExecutionProvider"]
    )

    def run_onnx(x, state, dt):
        output, new_state = session.run(None, {"x": x, "state": state, "dt": dt})
        return output, new_state

    def no_grad(function):
        def wrapped(x, state, dt):
            with torch.no_grad():
                return function(x, state, dt)

        return wrapped

    return {
        "eager": no_grad(step),
        "torchscript": no_grad(scripted),
        "torch.export": no_grad(program),
        "onnxruntime": run_onnx,
    }


def compile_c(model, folder: Path) -> tuple[export.CExport, Path]:
    """Generate the C step and its runner, build the runner with -O2, return both."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise RuntimeError("no C compiler (gcc or cc) on PATH")
    written = export.to_c(model, folder, "policy")
    runner = export.write_c_runner(written)
    binary = folder / "policy_runner"
    command = [compiler, "-std=c99", "-O2", str(written.source), str(runner), "-lm"]
    subprocess.run([*command, "-o", str(binary)], check=True)
    return written, binary


ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]

# Two minimal firmware images for the ARM size check: one that runs a step, one that does not.
# The difference of their flash is what the model adds, with the libm functions it calls.
ARM_MAIN = """#include "policy.h"
policy_state_t state;
float input[POLICY_INPUT_SIZE], output[POLICY_OUTPUT_SIZE];
int main(void)
{
    %s
    return (int)output[0] + (int)state.values[0] + (int)input[0];
}
"""


def object_size(compiler: list[str], size_tool: str, source: Path, folder: Path, tag: str) -> dict:
    """Compile ``source`` with -Os; return its section sizes and each function's stack frame."""
    obj = folder / f"policy_{tag}.o"
    subprocess.run(
        [*compiler, "-std=c99", "-Os", "-fstack-usage", "-c", str(source), "-o", str(obj)],
        check=True,
        cwd=folder,
    )
    size_lines = subprocess.run(
        [size_tool, str(obj)], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    text, data, bss = (int(value) for value in size_lines[1].split()[:3])
    frames = {}
    for line in obj.with_suffix(".su").read_text().splitlines():
        location, frame, _ = line.split("\t")
        frames[location.rsplit(":", 1)[-1]] = int(frame)
    step_frame = frames["policy_step"]
    # The step's frame plus every helper's it may call: an upper bound whatever gets inlined.
    helpers = sum(
        frame for name, frame in frames.items() if name not in ("policy_step", "policy_reset")
    )
    return {
        "compiler": " ".join(compiler),
        "flags": "-std=c99 -Os",
        "text_bytes": text,
        "data_bytes": data,
        "bss_bytes": bss,
        "stack_frames_bytes": frames,
        "step_stack_bound_bytes": step_frame + helpers,
    }


def arm_linked_flash(source: Path, folder: Path) -> int:
    """Return the flash bytes a step adds to a minimal Cortex-M4F image (newlib-nano, libm)."""
    flags = [
        *ARM_FLAGS,
        "-std=c99",
        "-Os",
        "-ffunction-sections",
        "-fdata-sections",
        "-Wl,--gc-sections",
        "--specs=nano.specs",
        "--specs=nosys.specs",
    ]
    flash = {}
    for tag, call in (
        ("with", "policy_reset(&state); policy_step(&state, input, 0.1f, output);"),
        ("without", ""),
    ):
        main = folder / f"main_{tag}.c"
        main.write_text(ARM_MAIN % call)
        image = folder / f"image_{tag}.elf"
        sources = [str(main), str(source)] if tag == "with" else [str(main)]
        subprocess.run(
            ["arm-none-eabi-gcc", *flags, *sources, "-lm", "-o", str(image)], check=True, cwd=folder
        )
        line = subprocess.run(
            ["arm-none-eabi-size", str(image)], check=True, capture_output=True, text=True
        ).stdout.splitlines()[1]
        text, data = (int(value) for value in line.split()[:2])
        flash[tag] = text + data
    return flash["with"] - flash["without"]


def c_sizes(written: export.CExport, folder: Path) -> dict:
    """Measure the generated source's flash and stack on this host and, if found, Cortex-M4F."""
    host = [shutil.which("gcc") or "cc"]
    sizes = {"host": object_size(host, "size", written.source, folder, "host")}
    if shutil.which("arm-none-eabi-gcc") and shutil.which("arm-none-eabi-size"):
        arm = ["arm-none-eabi-gcc", *ARM_FLAGS]
        sizes["cortex-m4f"] = object_size(arm, "arm-none-eabi-size", written.source, folder, "arm")
        sizes["cortex-m4f"]["linked_flash_bytes"] = arm_linked_flash(written.source, folder)
    return sizes


def check_agreement(model, forms: dict[str, Callable], binary: Path, folder: Path) -> dict:
    """Run every form on the same inputs; return each one's largest difference from eager."""
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(CHECK_STEPS, export.StepModule(model).input_size, generator=generator)
    dt = 0.05 + 0.2 * torch.rand(CHECK_STEPS, 1, generator=generator)
    state_size = export.StepModule(model).state_size

    outputs = {}
    for name, step in forms.items():
        numpy_form = name == "onnxruntime"
        state = np.zeros((1, state_size), np.float32) if numpy_form else torch.zeros(1, state_size)
        result = []
        for t in range(CHECK_STEPS):
            x, d = inputs[t : t + 1], dt[t : t + 1]
            if numpy_form:
                x, d = x.numpy(), d.numpy()
            output, state = step(x, state, d)
            result.append(np.asarray(output))
        outputs[name] = np.concatenate(result)

    records = np.concatenate([dt.numpy(), inputs.numpy()], axis=1).astype(np.float32)
    (folder / "check.bin").write_bytes(np.int32(CHECK_STEPS).tobytes() + records.tobytes())
    subprocess.run(
        [str(binary), "run", str(folder / "check.bin"), str(folder / "check.out")], check=True
    )
    c_values = np.fromfile(folder / "check.out", dtype=np.float32)
    outputs["c"] = c_values[: outputs["eager"].size].reshape(outputs["eager"].shape)

    differences = {
        name: float(np.abs(values - outputs["eager"]).max()) for name, values in outputs.items()
    }
    for name, difference in differences.items():
        if difference > CHECK_TOLERANCE:
            raise RuntimeError(f"{name} differs from eager PyTorch by {difference:g}")
    return differences


def benchmark_model(name: str, model, args, progress) -> dict:
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        forms = python_forms(model, folder)
        written, binary = compile_c(model, folder)
        differences = check_agreement(model, forms, binary, folder)

        step_module = export.StepModule(model)
        generator = torch.Generator().manual_seed(2)
        observations = torch.randn(args.steps, step_module.input_size, generator=generator)
        timings = {}
        for form, step in forms.items():
            numpy_form = form == "onnxruntime"
            x_all = observations.numpy() if numpy_form else observations
            dt = np.full((1, 1), 0.1, np.float32) if numpy_form else torch.full((1, 1), 0.1)
            state = {
                "value": np.zeros((1, step_module.state_size), np.float32)
                if numpy_form
                else step_module.initial_state(1)
            }

            def call(t, step=step, x_all=x_all, dt=dt, state=state):
                _, state["value"] = step(x_all[t : t + 1], state["value"], dt)

            timings[form] = time_loop(call, args.steps, args.repeats)
            progress(f"{name}: {form}")

        controller = export.StreamingController(model)
        timings["controller"] = time_loop(
            lambda t: controller.step(observations[t], 0.1), args.steps, args.repeats
        )
        progress(f"{name}: StreamingController.step")

        # The same C, built as a shared library and called from Python (CStep), checked
        # against the streaming controller before it is timed.
        native = export.compile_c(written)
        controller.reset()
        largest = 0.0
        for t in range(CHECK_STEPS):
            expected = controller.step(observations[t], 0.1).numpy().reshape(-1)
            largest = max(largest, float(np.abs(native(observations[t], 0.1) - expected).max()))
        if largest > CHECK_TOLERANCE:
            raise RuntimeError(f"CStep differs from eager PyTorch by {largest:g}")
        differences["c_from_python"] = largest
        native.reset()
        timings["c_from_python"] = time_loop(
            lambda t: native(observations[t], 0.1), args.steps, args.repeats
        )
        progress(f"{name}: CStep (the C step called from Python)")

        c_runs = []
        for _ in range(args.repeats):
            result = subprocess.run(
                [str(binary), "bench", str(args.c_steps)],
                check=True,
                capture_output=True,
                text=True,
            )
            c_runs.append(float(result.stdout) / 1000.0)
        timings["c"] = {"median_us": statistics.median(c_runs), "min_us": min(c_runs)}
        progress(f"{name}: compiled C")

        return {
            "state_size": written.state_size,
            "input_size": written.input_size,
            "output_size": written.output_size,
            "max_abs_difference_vs_eager": differences,
            "step_time": timings,
            "c_const_bytes": written.const_bytes,
            "c_state_bytes": written.state_bytes,
            "c_object": c_sizes(written, folder),
        }


def machine_record(threads: int) -> dict:
    compiler = shutil.which("gcc") or shutil.which("cc")
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    import onnxruntime

    return {
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "torchlnn": torchlnn.__version__,
        "c_compiler": version.splitlines()[0] if version else compiler,
        "threads": threads,
    }


def _cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    match = re.search(r"model name\s*:\s*(.+)", text)
    return match.group(1).strip() if match else platform.processor()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.model is not None:
        models = {args.model.stem: torchlnn.load(args.model).eval()}
    else:
        models = driver_models(args.seed)

    try:
        from tqdm import tqdm

        # eager, TorchScript, torch.export, ONNX Runtime, the controller, CStep, compiled C
        bar = tqdm(total=7 * len(models), desc="deploy step", unit="form")

        def progress(label: str) -> None:
            bar.set_postfix_str(label)
            bar.update(1)
    except ImportError:
        bar = None

        def progress(label: str) -> None:
            print(label, file=sys.stderr)

    record = {
        "benchmark": "deploy_step",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "settings": {
            "steps": args.steps,
            "repeats": args.repeats,
            "c_steps": args.c_steps,
            "seed": args.seed,
            "batch_size": 1,
        },
        "machine": machine_record(args.threads),
        "models": {},
    }
    for name, model in models.items():
        record["models"][name] = benchmark_model(name, model, args, progress)
    if bar is not None:
        bar.close()

    write_json(args.output, record)
    for name, result in record["models"].items():
        times = ", ".join(
            f"{form} {value['median_us']:.1f}" for form, value in result["step_time"].items()
        )
        print(f"{name} (microseconds per step, median): {times}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
