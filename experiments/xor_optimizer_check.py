"""Does the CfC paper's XOR optimiser setting train a PyTorch CfC? torchlnn against ncps.

The CfC paper's XOR script trains its (TensorFlow) CfC with RMSprop at learning rate 0.05.
With that setting torchlnn's CfC did not learn: its training loss stayed near 2.4, while
binary cross-entropy at chance is 0.69. This script tests whether the cause is torchlnn's cell
or the setting. It trains torchlnn's CfC and the CfC of ncps 1.0.1 with the same loop,
data, seed and settings. Each trains once with the CfC paper's RMSprop setting and once with Adam
at 0.001, and the script writes the training loss of each epoch.

With ``--model cfc`` (the default) both implementations build the paper's XOR CfC: 192
units, a backbone of one 128-unit ReLU layer. ``--model cfc-nogate`` builds its CfC without
gate: 128 units, one 192-unit SiLU backbone layer with dropout 0.3. Both get the elapsed time
of each event divided by 32 as its timespan, and one logit is read from the state at the
stream's last event. The gradient of each tensor is clipped to norm 1 separately, as
Keras's ``clipnorm`` does. ncps's layer squeezes per-sample timespans of shape (B, 1) to
(B,), which does not broadcast against its (B, N) gates, so its cell is stepped here one
event at a time.

    python experiments/xor_optimizer_check.py        # about 3 minutes on 2 CPU cores
    python experiments/xor_optimizer_check.py --model cfc-nogate --settings adam
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import torchlnn
from torchlnn.data import load_xor

RESULTS = Path(__file__).parent / "results"
PAD = 32
# Optimiser settings by command-line name: table label, optimiser, learning rate.
SETTINGS = {
    "paper": ("paper: RMSprop, lr 0.05", "rmsprop", 0.05),
    "adam": ("Adam, lr 0.001", "adam", 0.001),
}
# The CfC paper's XOR models: units, then the layer options that torchlnn and ncps share.
MODELS = {
    "cfc": (192, {"backbone_units": 128, "backbone_layers": 1, "activation": "relu"}),
    "cfc-nogate": (
        128,
        {
            "backbone_units": 192,
            "backbone_layers": 1,
            "backbone_dropout": 0.3,
            "activation": "silu",
            "mode": "no_gate",
        },
    ),
}


def build(implementation: str, model: str) -> nn.Module:
    units, options = MODELS[model]
    if implementation == "torchlnn":
        return torchlnn.CfC(1, units, **options)
    import ncps.torch

    return ncps.torch.CfC(1, units, **options)


def states(implementation: str, rnn: nn.Module, x: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    """Return the states (B, T, N) for events x (B, T, 1) and timespans ts (B, T)."""
    if implementation == "torchlnn":
        rnn.return_sequences = True
        output, _ = rnn(x, timespans=ts)
        return output
    h = x.new_zeros(x.shape[0], rnn.state_size)
    outputs = []
    for t in range(x.shape[1]):
        _, h = rnn.rnn_cell(x[:, t], h, ts[:, t : t + 1])  # elapsed time (B, 1)
        outputs.append(h)
    return torch.stack(outputs, dim=1)


def train(implementation: str, optimizer_name: str, lr: float, args) -> dict:
    splits = load_xor("event", num_train=args.streams, num_valid=2000, num_test=10)
    data = {}
    for name, split in (("train", splits.train), ("valid", splits.valid)):
        last = split.mask.long().cumsum(1).argmax(1)  # index of each stream's last event
        data[name] = (split.inputs, split.timespans / PAD, last, split.targets.float())

    torch.manual_seed(args.seed)
    units, _ = MODELS[args.model]
    rnn, head = build(implementation, args.model), nn.Linear(units, 1)
    parameters = [*rnn.parameters(), *head.parameters()]
    if optimizer_name == "rmsprop":  # Keras's RMSprop: decay rate 0.9, epsilon 1e-7
        optimizer = torch.optim.RMSprop(parameters, lr=lr, alpha=0.9, eps=1e-7)
    else:
        optimizer = torch.optim.Adam(parameters, lr=lr)

    def logits(x, ts, last):
        hidden = states(implementation, rnn, x, ts)  # (B, T, N)
        return head(hidden[torch.arange(len(last)), last]).squeeze(-1)

    x, ts, last, y = data["train"]
    generator = torch.Generator().manual_seed(args.seed)
    epochs = []
    started = time.perf_counter()
    for _ in range(args.epochs):
        losses = []
        for batch in torch.randperm(len(y), generator=generator).split(args.batch_size):
            loss = nn.functional.binary_cross_entropy_with_logits(
                logits(x[batch], ts[batch], last[batch]), y[batch]
            )
            optimizer.zero_grad()
            loss.backward()
            for parameter in parameters:  # clip each tensor separately, as Keras's clipnorm
                torch.nn.utils.clip_grad_norm_([parameter], 1.0)
            optimizer.step()
            losses.append(loss.item())
        with torch.no_grad():
            vx, vts, vlast, vy = data["valid"]
            accuracy = ((logits(vx, vts, vlast) > 0).float() == vy).float().mean().item()
        epochs.append({"train_loss": float(np.mean(losses)), "valid_accuracy": accuracy})
    return {"epochs": epochs, "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=20_000, help="training streams")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", choices=sorted(MODELS), default="cfc",
                        help="the CfC paper's XOR configuration to train (default: cfc)")
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS),
                        default=list(SETTINGS), help="optimiser settings to train with")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for label, optimizer_name, lr in (SETTINGS[name] for name in args.settings):
        for implementation in ("torchlnn", "ncps"):
            result = train(implementation, optimizer_name, lr, args)
            rows.append({"setting": label, "implementation": implementation, **result})
            losses = ", ".join(f"{e['train_loss']:.3f}" for e in result["epochs"])
            print(f"{label:26s} {implementation:9s} train loss per epoch: {losses}", flush=True)

    command = " ".join(["python experiments/xor_optimizer_check.py", *sys.argv[1:]])
    record = {
        "command": command,
        "settings": vars(args),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} thread{'s' if args.threads != 1 else ''}",
        "rows": rows,
    }
    stem = "xor_optimizer_check" if args.model == "cfc" else f"xor_optimizer_check_{args.model}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")

    lines = [
        "| setting | implementation | training loss per epoch | validation accuracy (%) "
        "after the last epoch | seconds |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        losses = ", ".join(f"{e['train_loss']:.3f}" for e in row["epochs"])
        accuracy = 100 * row["epochs"][-1]["valid_accuracy"]
        lines.append(
            f"| {row['setting']} | {row['implementation']} | {losses} | {accuracy:.1f} | "
            f"{row['seconds']} |"
        )
    lines += [
        "",
        f"Model {args.model}: {args.streams:,} training streams, {args.epochs} epochs, batch "
        f"{args.batch_size}, seed {args.seed}; `{command}` on {record['machine']}.",
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
