"""Lane-keeping policies: camera frames to road curvature, with a conv head and a controller.

Every policy shares the perception of the neural circuit policy paper (Lechner et al., "Neural
circuit policies enabling auditable autonomy", Nature Machine Intelligence 2, 2020): a
:class:`ConvHead` turns each frame into 32 features, and a controller maps the feature sequence
to a curvature per frame. The controllers:

* ``"ncp-ltc"``: an LTC with the paper's 19-neuron wiring ``NCP(12, 6, 1, 6, 4, 6, 6)`` and 6
  ODE unfolds per frame; the output is its single motor neuron.
* ``"ncp-cfc"``: a CfC with the same wiring, connected as ncps connects it (see
  :class:`torchlnn.WiredCfCCell`).
* ``"cfc"``: a dense CfC of 19 neurons with a backbone, projected to one output.
* ``"lstm"``: an LSTM of 64 units with a linear read-out.
* ``"ctrnn"``: the continuous-time RNN of :class:`torchlnn.baselines.CTRNN` with 19 neurons
  (``dh/dt = -h / tau + tanh(W [x; h] + b)``), ``ode_unfolds`` exponential-Euler sub-steps
  per frame, with a linear read-out.
* ``"cnn"``: no memory: two dense layers on each frame's features.

Shapes: frames are (B, T, 3, H, W) float tensors (RGB in [0, 1], 78 x 200 by default), the
curvature is (B, T) in 1/m, positive to the left.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

import torchlnn
from torchlnn.baselines import CTRNN
from torchlnn.wirings import NCP

POLICY_KINDS = ("ncp-ltc", "ncp-cfc", "cfc", "lstm", "ctrnn", "cnn")

# Initialisations of the conv head (see ConvHead).
CONV_INITS = ("glorot", "pytorch")


def paper_wiring(seed: int = 22222) -> NCP:
    """Return the lane-keeping circuit of the NCP paper: 12 inter, 6 command, 1 motor neuron."""
    return NCP(
        inter_neurons=12,
        command_neurons=6,
        motor_neurons=1,
        sensory_fanout=6,
        inter_fanout=4,
        recurrent_command_synapses=6,
        motor_fanin=6,
        seed=seed,
    )


def _conv_output_size(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


class Rescale(nn.Module):
    """Map pixel values from [0, 1] to [-1, 1]: ``2 x - 1``."""

    def forward(self, frames: Tensor) -> Tensor:
        return frames * 2.0 - 1.0


class ConvHead(nn.Module):
    """The NCP paper's perception: five conv layers, then one small dense layer per feature map.

    Conv layers of 24, 36, 48, 64 and 8 filters (kernels 5, 5, 3, 3, 3; strides 2, 2, 2, 1, 1;
    no padding; ReLU), then each of the 8 final feature maps is flattened into its own dense
    layer of 4 units: 8 x 4 = 32 features per frame. At 78 x 200 the final maps are 4 x 19.
    A layer normalisation of the 32 features (with a learned scale and offset) brings them to
    order one, where the liquid neurons' synapse activations are sensitive: without it, their
    typical size of 0.05 at initialisation leaves the LTC's sigmoids almost constant.

    The conv layers start from Glorot-uniform weights and zero biases (``init="glorot"``), the
    defaults of Keras's ``Conv2D``. PyTorch's own defaults (``init="pytorch"``: Kaiming-uniform
    weights with ``a = sqrt(5)`` and biases uniform in +-1/sqrt(fan_in)) shrink the activations
    through the five layers to about 0.01 in the last one, below the bias range of 0.04 there.
    So a channel whose bias starts negative is zero on every frame: on lane-keeping frames
    about 3 of the last layer's 8 channels start dead, and a dead ReLU channel gets no
    gradient to revive it. Zero biases start nearly every channel live.

    Args:
        frame_size: (H, W) of the frames; fixes the dense layers' sizes, checked at
            construction (the conv stack must leave maps of at least 1 x 1).
        channels, kernels, strides: the conv stack.
        units_per_map: width of each feature map's dense layer.
        features: the number of features the head must produce; construction fails when
            ``channels[-1] * units_per_map`` differs, so a mismatch with the controller's
            sensory inputs shows at once.
        init: "glorot" (the default) or "pytorch", the conv layers' initialisation.

    Shapes: frames (..., 3, H, W) -> features (..., features). ``convs`` is the convolutional
    part (rescaling included), the module to pass to ``torchlnn.analysis.visual_backprop``.
    """

    def __init__(
        self,
        frame_size: tuple[int, int] = (78, 200),
        channels: Sequence[int] = (24, 36, 48, 64, 8),
        kernels: Sequence[int] = (5, 5, 3, 3, 3),
        strides: Sequence[int] = (2, 2, 2, 1, 1),
        units_per_map: int = 4,
        features: int = 32,
        init: str = "glorot",
    ):
        super().__init__()
        if init not in CONV_INITS:
            raise ValueError(f"ConvHead: init must be one of {CONV_INITS}, got {init!r}.")
        if not len(channels) == len(kernels) == len(strides):
            raise ValueError(
                f"ConvHead: channels, kernels and strides need one entry per conv layer, got "
                f"{len(channels)}, {len(kernels)} and {len(strides)}."
            )
        if channels[-1] * units_per_map != features:
            raise ValueError(
                f"ConvHead: {channels[-1]} feature maps x {units_per_map} units give "
                f"{channels[-1] * units_per_map} features, but the controller expects "
                f"{features}. Change the last conv layer's channels or units_per_map."
            )
        height, width = (int(frame_size[0]), int(frame_size[1]))
        self.frame_size = (height, width)

        layers: list[nn.Module] = [Rescale()]
        in_channels = 3
        for out_channels, kernel, stride in zip(channels, kernels, strides):
            conv = nn.Conv2d(in_channels, out_channels, kernel, stride)
            if init == "glorot":
                nn.init.xavier_uniform_(conv.weight)
                nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU()]
            in_channels = out_channels
            height = _conv_output_size(height, kernel, stride)
            width = _conv_output_size(width, kernel, stride)
            if height < 1 or width < 1:
                raise ValueError(
                    f"ConvHead: frames of {self.frame_size[0]} x {self.frame_size[1]} are too "
                    f"small for this conv stack (a layer's output would be {height} x {width})."
                )
        self.convs = nn.Sequential(*layers)
        self.map_size = (height, width)
        self.maps = channels[-1]
        self.units_per_map = units_per_map
        self.out_features = features

        # One dense layer per feature map, stored as a batch of matrices.
        area = height * width
        bound = 1.0 / math.sqrt(area)
        self.map_weight = nn.Parameter(torch.empty(self.maps, area, units_per_map))
        self.map_bias = nn.Parameter(torch.empty(self.maps, units_per_map))
        nn.init.uniform_(self.map_weight, -bound, bound)
        nn.init.uniform_(self.map_bias, -bound, bound)
        self.norm = nn.LayerNorm(features)
        # True runs the convs on channels-last images (see forward), False channels first.
        self.channels_last = True

    def check_frames(self, frames: Tensor) -> None:
        """Raise ValueError unless ``frames`` has shape (..., 3, H, W) with this head's H, W."""
        expected = (3, *self.frame_size)
        if frames.dim() < 4 or tuple(frames.shape[-3:]) != expected:
            raise ValueError(
                f"The policy expects frames of shape (B, T, {expected[0]}, {expected[1]}, "
                f"{expected[2]}) (channels first, RGB in [0, 1]); got {tuple(frames.shape)}. "
                f"Resize the frames, or build the policy with frame_size=(H, W)."
            )

    def forward(self, frames: Tensor) -> Tensor:
        leading = frames.shape[:-3]
        images = frames.reshape(-1, *frames.shape[-3:])  # (..., 3, H, W) -> (P, 3, H, W)

        # Channels-last images run the conv stack in NHWC order: a policy's CPU training step
        # took about 1.5 times less CPU time (benchmarks/conv_head.py), with the same outputs
        # up to float rounding.
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        maps = self.convs(images)  # (P, M, h, w)
        maps = maps.flatten(2)  # (P, M, h * w)
        features = torch.einsum("pma,mau->pmu", maps, self.map_weight) + self.map_bias
        features = features.reshape(*leading, self.out_features)  # (P, M, U) -> (..., M * U)
        return self.norm(features)


class DrivingPolicy(nn.Module):
    """A lane-keeping policy: a conv head per frame, then a controller over the frame sequence.

    Build one with :func:`build_policy`. ``forward(frames, hx=None, timespans=None)`` returns
    ``(curvature, h_n)``: curvature (B, T) in 1/m, and the controller's final state (None for the
    memoryless CNN). ``curvature_scale`` (a buffer, 1.0 by default) multiplies the controller's
    output, so training can work with targets of order one.

    Args:
        kind: one of ``POLICY_KINDS``.
        frame_size: (H, W) of the frames.
        seed: seed of the NCP wiring (for the ``ncp-*`` kinds).
        ode_unfolds: LTC solver steps per frame.
        conv_init: initialisation of the conv head, "glorot" or "pytorch" (see
            :class:`ConvHead`).
    """

    def __init__(
        self,
        kind: str = "ncp-ltc",
        frame_size: tuple[int, int] = (78, 200),
        seed: int = 22222,
        ode_unfolds: int = 6,
        conv_init: str = "glorot",
    ):
        super().__init__()
        if kind not in POLICY_KINDS:
            raise ValueError(f"Unknown policy kind {kind!r}; expected one of {POLICY_KINDS}.")
        self.kind = kind
        self.config = {
            "kind": kind,
            "frame_size": list(frame_size),
            "seed": seed,
            "ode_unfolds": ode_unfolds,
            "conv_init": conv_init,
        }
        self.head = ConvHead(frame_size, init=conv_init)
        features = self.head.out_features
        self.readout: nn.Module | None = None

        if kind == "ncp-ltc":
            self.controller = torchlnn.LTC(features, paper_wiring(seed), ode_unfolds=ode_unfolds)
        elif kind == "ncp-cfc":
            # ncps's connectivity: every neuron of a layer reads its whole layer, and the time
            # heads are dense. With the strict wiring connectivity, this policy's validation
            # loss did not improve in 5 epochs of the quick preset. With ncps's, it did.
            self.controller = torchlnn.CfC(
                features, paper_wiring(seed), proj_size=1, connectivity="ncps"
            )
        elif kind == "cfc":
            self.controller = torchlnn.CfC(features, 19, proj_size=1, backbone_units=64)
        elif kind == "lstm":
            self.controller = nn.LSTM(features, 64, batch_first=True)
            self.readout = nn.Linear(64, 1)
        elif kind == "ctrnn":
            self.controller = CTRNN(features, 19, ode_unfolds=ode_unfolds)
            self.readout = nn.Linear(19, 1)
        else:
            self.controller = nn.Sequential(
                nn.Linear(features, 64), nn.ReLU(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 1)
            )
        self.register_buffer("curvature_scale", torch.ones(()))

    @property
    def recurrent(self) -> bool:
        """Whether the policy carries a state from frame to frame."""
        return self.kind != "cnn"

    def forward(
        self, frames: Tensor, hx: Any = None, timespans: Tensor | float | None = None
    ) -> tuple[Tensor, Any]:
        self.head.check_frames(frames)
        if frames.dim() != 5:
            raise ValueError(
                f"The policy expects a batch of frame sequences (B, T, 3, H, W); got "
                f"{frames.dim()} dims. Add the missing axes with frames[None] or frames[:, None]."
            )
        features = self.head(frames)  # (B, T, 32)

        if self.kind in ("ncp-ltc", "ncp-cfc", "cfc"):
            output, h_n = self.controller(features, hx, timespans)  # (B, T, 1)
        elif self.kind == "lstm":
            hidden, h_n = self.controller(features, hx)
            output = self.readout(hidden)
        elif self.kind == "ctrnn":
            hidden, h_n = self.controller(features, hx, timespans)
            output = self.readout(hidden)
        else:
            output, h_n = self.controller(features), None
        return output.squeeze(-1) * self.curvature_scale, h_n

    def parameter_counts(self) -> dict[str, int]:
        """Return the trainable parameters of perception (the conv head) and of control."""
        perception = sum(p.numel() for p in self.head.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {"perception": perception, "control": total - perception, "total": total}


def build_policy(kind: str, **options: Any) -> DrivingPolicy:
    """Return a fresh :class:`DrivingPolicy` of ``kind`` (see ``POLICY_KINDS``)."""
    return DrivingPolicy(kind, **options)


@contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """Run the enclosed torch work on ``threads`` intra-op threads, then restore the setting.

    None leaves the setting alone. ``torch.set_num_threads`` is process-wide, so torch work in
    other Python threads meanwhile runs with the same number.
    """
    previous = torch.get_num_threads()
    if threads is None or threads == previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class PolicyDriver:
    """Drive with a trained policy, one frame at a time, keeping its state between frames.

    Implements the driving policy interface (:mod:`torchlnn.driving.policy`): call it with a
    float32 (H, W, 3) frame in [0, 1] and it returns the curvature in 1/m. ``reset()`` clears the
    state before each run. Running frames one by one gives the outputs of one call on the whole
    sequence (a test checks it).

    A step runs on one intra-op thread by default. The operations on one frame are small, and
    when other programs share the cores a parallel region waits for a descheduled thread: on
    2 shared cores a step of the NCP-LTC policy took about 240 ms with 2 threads and 5 ms with
    one.

    Args:
        policy: a trained :class:`DrivingPolicy`.
        dt: elapsed time per frame, in the unit the policy was trained with.
        threads: torch intra-op threads during a step; None keeps the process's setting.
    """

    privileged = False

    def __init__(self, policy: DrivingPolicy, dt: float = 1.0, threads: int | None = 1):
        if threads is not None and threads < 1:
            raise ValueError(
                f"PolicyDriver: threads must be at least 1 or None (keep the process's "
                f"setting), got {threads}."
            )
        self.policy = policy.eval()
        self.dt = float(dt)
        self.threads = threads
        self.state: Any = None

    def reset(self) -> None:
        """Forget the recurrent state."""
        self.state = None

    @torch.no_grad()
    def step(self, frame: Tensor) -> Tensor:
        """Advance one frame (B, 3, H, W) and return the curvature (B,)."""
        frames = frame[:, None]  # (B, 3, H, W) -> (B, 1, 3, H, W)
        timespans = None if self.policy.kind in ("lstm", "cnn") else self.dt
        with intra_op_threads(self.threads):
            curvature, self.state = self.policy(frames, self.state, timespans)
        return curvature[:, 0]

    def __call__(self, frame, info=None) -> float:
        image = torch.as_tensor(frame, dtype=torch.float32)
        image = image.permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
        return float(self.step(image[None])[0])
