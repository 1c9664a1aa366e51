"""CPU time of a training step with and without subnormal floats flushed to zero.

A trained cell can carry values below float32's normal range (about 1.2e-38). CPUs compute
with such subnormal numbers far slower than with normal ones, so a training step can slow
down as a run goes on. This script times the training step (forward, loss, backward) of the
event-based XOR CfC on the same batches, three ways:

- ``initial``: the model at initialisation (the weights a benchmark usually times);
- ``trained``: the weights of a checkpoint of a training run, subnormal floats kept;
- ``trained_flushed``: the same weights with ``torch.set_flush_denormal(True)``.

Each figure is the median over ``--repeats`` passes of the CPU time per batch of this
process, on one thread. The CPU time counts only this process, so the result depends much
less on other programs sharing the machine than the wall-clock time would.

Run: ``python benchmarks/denormals.py --checkpoint RUN/checkpoints/last.ckpt`` with a
checkpoint of ``torchlnn experiment xor --model cfc`` (any epoch after the first few). The
result is printed and written to ``benchmarks/results/denormals.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from torchlnn._io import write_json
from torchlnn.experiments.runner import build_run, get_spec
from torchlnn.training.run import environment_info

RESULT = Path(__file__).parent / "results" / "denormals.json"


def seconds_per_batch(module, batches, repeats: int) -> float:
    """Return the median CPU seconds of one training step over ``repeats`` passes."""
    passes = []
    for _ in range(repeats):
        started = time.process_time()
        for batch in batches:
            module.zero_grad(set_to_none=True)
            loss = module.training_step(batch, 0)
            loss = loss["loss"] if isinstance(loss, dict) else loss
            loss.backward()
        passes.append((time.process_time() - started) / len(batches))
    return statistics.median(passes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="last.ckpt or best.ckpt of an event-based XOR CfC run")
    parser.add_argument("--batches", type=int, default=6, help="batches per pass")
    parser.add_argument("--repeats", type=int, default=3, help="passes; the median is kept")
    parser.add_argument("--output", type=Path, default=RESULT, help="JSON file to write")
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        raise SystemExit(
            f"Checkpoint {args.checkpoint} not found; pass a checkpoint of "
            "`torchlnn experiment xor --model cfc` (its run folder's checkpoints/last.ckpt)."
        )

    torch.set_num_threads(1)
    torch.set_flush_denormal(False)
    spec = get_spec("xor")
    config = spec.config_for("cfc", 0)
    config.max_samples = 128 * args.batches
    module, datamodule = build_run(spec, config)
    datamodule.setup("fit")
    batches = [batch for _, batch in zip(range(args.batches), datamodule.train_dataloader())]

    result = {"initial": seconds_per_batch(module, batches, args.repeats)}
    saved = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    module.load_state_dict(saved["state_dict"])
    result["trained"] = seconds_per_batch(module, batches, args.repeats)
    torch.set_flush_denormal(True)
    result["trained_flushed"] = seconds_per_batch(module, batches, args.repeats)
    torch.set_flush_denormal(False)

    record = {
        "cpu_seconds_per_batch": result,
        "checkpoint_epoch": saved.get("epoch"),
        "batch_size": config.batch_size,
        "batches": args.batches,
        "repeats": args.repeats,
        "environment": environment_info(),
    }
    write_json(args.output, record)
    for name, seconds in result.items():
        print(f"{name}: {seconds:.3f} CPU s per batch")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
