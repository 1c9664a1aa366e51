"""Figures rendered with Agg and checked for what they draw, not only that a file exists."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("matplotlib")

import torchlnn  # noqa: E402
from torchlnn import analysis, plotting  # noqa: E402
from torchlnn.analysis import wiring_graph  # noqa: E402
from torchlnn.wirings import NCP  # noqa: E402

from .models import RelayWiring, TinyPolicy, small_ncp  # noqa: E402

EXCITATORY = np.array([0x23, 0x8B, 0x45])
INHIBITORY = np.array([0xCB, 0x18, 0x1D])


def pixels_near(image, color, tolerance=40):
    """Count the pixels of an RGBA image within ``tolerance`` of an RGB colour."""
    return int((np.abs(image[..., :3].astype(int) - color).max(axis=-1) < tolerance).sum())


def assert_not_blank(image, minimum=0.02):
    non_white = (image[..., :3] < 245).any(axis=-1).mean()
    assert non_white > minimum, f"only {non_white:.3%} of the pixels are drawn"


def by_gid(items, prefix):
    return [item for item in items if (item.get_gid() or "").startswith(prefix)]


def test_lazy_imports():
    code = (
        "import sys, torchlnn.analysis, torchlnn.plotting; "
        "print(sorted(m for m in ('matplotlib', 'imageio', 'captum', 'skimage') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_wiring_plot_draws_every_neuron_and_synapse():
    layer = torchlnn.LTC(32, NCP(12, 6, 1, 6, 4, 6, 6))
    graph = wiring_graph(layer)
    figure = plotting.plot_wiring(layer)
    ax = figure.axes[0]

    excitatory = by_gid(ax.patches, "synapse:excitatory")
    inhibitory = by_gid(ax.patches, "synapse:inhibitory")
    self_synapse = (~graph.from_sensory) & (graph.sources == graph.targets)
    drawn = ~self_synapse
    assert len(excitatory) == int(((graph.polarity > 0) & drawn).sum())
    assert len(inhibitory) == int(((graph.polarity < 0) & drawn).sum())

    neurons = by_gid(ax.collections, "neurons:")
    assert sum(len(c.get_offsets()) for c in neurons) == 19 + 32
    rings = by_gid(ax.collections, "self-synapses:")
    assert sum(len(c.get_offsets()) for c in rings) == int(self_synapse.sum())
    assert {c.get_gid() for c in neurons} == {
        "neurons:sensory", "neurons:inter", "neurons:command", "neurons:motor"
    }

    image = plotting.figure_to_array(figure)
    assert_not_blank(image)
    assert pixels_near(image, EXCITATORY) > 200
    assert pixels_near(image, INHIBITORY) > 200


def test_wiring_plot_widths_follow_weights():
    layer = torchlnn.LTC(4, small_ncp())
    figure = plotting.plot_wiring(layer, include_sensory=False)
    graph = wiring_graph(layer, include_sensory=False)
    arrows = by_gid(figure.axes[0].patches, "synapse:")
    drawn = graph.sources != graph.targets
    widths = np.array([arrow.get_linewidth() for arrow in arrows])
    order_by_weight = np.argsort(graph.weight[drawn])
    assert np.all(np.diff(widths[order_by_weight]) >= -1e-12)  # wider for larger weights
    plain = plotting.plot_wiring(layer, include_sensory=False, weights=False)
    assert len({a.get_linewidth() for a in by_gid(plain.axes[0].patches, "synapse:")}) == 1


def test_wiring_plot_user_layers_and_cfc():
    wiring = RelayWiring()
    figure = plotting.plot_wiring(torchlnn.CfC(3, wiring))
    texts = {text.get_text() for text in figure.axes[0].texts}
    assert {"relay (2)", "inter (3)", "command (2)", "motor (1)", "sensory (3)"} <= texts
    assert by_gid(figure.axes[0].collections, "neurons:relay")
    assert_not_blank(plotting.figure_to_array(figure))


def test_activity_plot_groups_traces_by_type():
    layer = torchlnn.LTC(4, small_ncp())
    activity = analysis.record_activity(layer, torch.randn(2, 15, 4))
    targets = np.sin(np.arange(15))[None].repeat(2, 0)
    figure = plotting.plot_activity(activity, sample=1, targets=targets)
    output_ax, *type_axes = figure.axes
    assert len(output_ax.lines) == 3  # two outputs (two motor neurons) and the target
    assert [ax.get_ylabel() for ax in type_axes] == ["motor\n(2)", "command\n(3)", "inter\n(5)"]
    assert [len(ax.lines) for ax in type_axes] == [2, 3, 5]
    np.testing.assert_allclose(type_axes[1].lines[0].get_ydata(), activity.states[1, :, 2])
    assert_not_blank(plotting.figure_to_array(figure))


def test_activity_plot_squeezed_output():
    class Squeezed(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(4, 5, batch_first=True)

        def forward(self, x):
            return self.gru(x)[0].sum(-1)  # (B, T)

    activity = analysis.record_activity(Squeezed(), torch.randn(2, 7, 4))
    figure = plotting.plot_activity(activity)
    assert len(figure.axes[0].lines[0].get_xdata()) == 7
    assert [len(ax.lines) for ax in figure.axes[1:]] == [5]


def test_activity_plot_stops_at_padding():
    layer = torchlnn.CfC(4, small_ncp())
    activity = analysis.record_activity(layer, torch.randn(2, 10, 4), lengths=[10, 4])
    figure = plotting.plot_activity(activity, sample=1)
    assert len(figure.axes[1].lines[0].get_xdata()) == 4
    with pytest.raises(ValueError, match="sample must be in"):
        plotting.plot_activity(activity, sample=5)


def test_pca_plots():
    x = torch.randn(2, 20, 4)
    pca = analysis.activity_pca(analysis.record_activity(torchlnn.LTC(4, small_ncp()), x))
    lstm = analysis.activity_pca(analysis.record_activity(nn.LSTM(4, 10, batch_first=True), x))
    figure = plotting.plot_pca(pca, components=4)
    bars = [p for p in figure.axes[0].patches]
    assert len(bars) == 4
    np.testing.assert_allclose([b.get_height() for b in bars],
                               100 * pca.explained_variance_ratio[:4])
    assert len(figure.axes[1].collections[0].get_offsets()) == 20  # one point per step

    comparison = plotting.plot_pca_comparison({"NCP": pca, "LSTM": lstm}, components=3)
    assert len(comparison.axes[0].patches) == 6
    assert [t.get_text() for t in comparison.axes[0].get_legend().get_texts()] == ["NCP", "LSTM"]


def test_correlation_time_constant_and_sensitivity_plots():
    layer = torchlnn.LTC(4, small_ncp())
    x = torch.randn(2, 12, 4)
    activity = analysis.record_activity(layer, x)
    types = activity.neuron_types

    correlation = analysis.neuron_output_correlation(activity)
    figure = plotting.plot_correlation(correlation, types)
    heights = [bar.get_height() for bar in figure.axes[0].patches[:10]]
    np.testing.assert_allclose(heights, correlation[:, 0])

    tau = analysis.time_constants(layer, x)
    figure = plotting.plot_time_constants(tau, types)
    assert len(figure.axes[0].lines) == 10
    assert figure.axes[0].get_yscale() == "log"

    estimate = analysis.lipschitz_estimate(layer, x)
    bound = analysis.ltc_lipschitz_bound(layer)
    figure = plotting.plot_lipschitz(types, estimate=estimate, bound=bound)
    assert len(figure.axes[0].patches) == 10
    assert len(figure.axes[0].collections[0].get_offsets()) == 10

    sensitivity = analysis.input_sensitivity(layer, x)
    figure = plotting.plot_input_sensitivity(sensitivity, sample=1)
    np.testing.assert_allclose(figure.axes[0].images[0].get_array(), sensitivity[1].T)
    assert_not_blank(plotting.figure_to_array(figure))


def test_overlay_blends_by_attention():
    frame = np.full((3, 4, 5), 0.5)
    attention = np.zeros((4, 5))
    attention[1, 2] = 1.0
    image = plotting.overlay_attention(frame, attention, alpha=1.0)
    assert image.dtype == np.uint8
    assert image.shape == (4, 5, 3)
    assert (image[0, 0] == 128).all()  # no attention: the frame itself
    assert not (image[1, 2] == 128).all()  # full attention: the colormap's colour
    with pytest.raises(ValueError, match="frame's size"):
        plotting.overlay_attention(frame, np.zeros((5, 4)))


def test_attention_grid_and_animation(tmp_path):
    imageio = pytest.importorskip("imageio.v3")
    torch.manual_seed(0)
    policy = TinyPolicy()
    frames = torch.rand(1, 5, 3, 24, 32)
    maps = {
        "VisualBackProp": analysis.visual_backprop(policy.conv_head, frames)[0],
        "SmoothGrad": analysis.smoothgrad(policy, frames, samples=2)[0],
    }
    figure = plotting.plot_attention(frames[0], maps, columns=3)
    images = [ax.images[0] for ax in figure.axes]
    assert len(images) == 9  # 3 steps x (frame + 2 methods)
    assert images[0].get_array().shape == (24, 32, 3)

    outputs = policy(frames)[0, :, 0].detach().numpy()
    path = tmp_path / "attention.gif"
    video = plotting.write_attention_animation(frames[0], maps, path, outputs=outputs, fps=5)
    assert video.shape[0] == 5
    assert video.shape[1] >= 160
    written = imageio.imread(path, index=None)
    assert written.shape[0] == 5
    assert written.shape[1:3] == video.shape[1:3]
    assert not np.array_equal(written[0], written[-1])
    with pytest.raises(ValueError, match="must end in .gif or .mp4"):
        plotting.write_attention_animation(frames[0], maps, tmp_path / "a.avi")


def test_nothing_written_without_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    layer = torchlnn.LTC(4, small_ncp())
    activity = analysis.record_activity(layer, torch.randn(1, 6, 4))
    plotting.plot_wiring(layer)
    plotting.plot_activity(activity)
    plotting.plot_pca(analysis.activity_pca(activity))
    plotting.attention_video_frames(np.random.rand(2, 3, 12, 12), np.random.rand(2, 12, 12))
    assert list(tmp_path.iterdir()) == []

    path = tmp_path / "wiring.svg"
    plotting.plot_wiring(layer, path=path)
    assert path.read_text().startswith("<?xml")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plotting.plot_wiring(layer, path=tmp_path / "missing" / "wiring.png")
