"""Recording neuron states, their principal components and their correlation with the output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torchlnn
from torchlnn.analysis import activity_pca, neuron_output_correlation, record_activity

from .models import StreamingPolicy, TinyPolicy, small_ncp


def liquid_layers():
    return {
        "ltc": lambda: torchlnn.LTC(4, small_ncp()),
        "ltc-mixed": lambda: torchlnn.LTC(4, small_ncp(), mixed_memory=True),
        "cfc-wired": lambda: torchlnn.CfC(4, small_ncp()),
        "cfc-dense-proj": lambda: torchlnn.CfC(4, 7, proj_size=2, backbone_units=8),
    }


@pytest.mark.parametrize("name", sorted(liquid_layers()))
def test_record_keeps_outputs_and_states(name):
    layer = liquid_layers()[name]()
    x = torch.randn(3, 9, 4)
    timespans = torch.rand(3, 9) + 0.5

    activity = record_activity(layer, x, timespans=timespans)
    with torch.no_grad():  # as record_activity runs; the fast paths round otherwise with grad
        expected_output, _ = layer(x, timespans=timespans)
        expected = layer.forward_with_states(x, timespans=timespans)

    np.testing.assert_array_equal(activity.outputs, expected_output.double().detach().numpy())
    np.testing.assert_array_equal(activity.states, expected.states.double().detach().numpy())
    assert activity.states.shape == (3, 9, layer.state_size)
    assert len(activity.neuron_types) == layer.state_size
    assert activity.mask is None


def test_record_neuron_types_follow_wiring():
    layer = torchlnn.LTC(4, small_ncp())
    activity = record_activity(layer, torch.randn(2, 5, 4))
    assert activity.neuron_types == layer.wiring.neuron_types()
    assert activity.neuron_types[:2] == ["motor", "motor"]
    dense = record_activity(torchlnn.CfC(4, 6), torch.randn(2, 5, 4))
    assert dense.neuron_types == ["hidden"] * 6


def test_record_time_major_and_unbatched():
    layer = torchlnn.LTC(4, small_ncp(), batch_first=False)
    x = torch.randn(7, 3, 4)  # (T, B, F)
    activity = record_activity(layer, x)
    reference = layer.forward_with_states(x)
    np.testing.assert_allclose(activity.states, reference.states.transpose(0, 1).detach().numpy())
    np.testing.assert_allclose(activity.outputs, reference.output.transpose(0, 1).detach().numpy())

    unbatched = record_activity(layer, x[:, 0])  # (T, F)
    assert unbatched.states.shape == (1, 7, 10)
    np.testing.assert_allclose(unbatched.states[0], activity.states[0], rtol=1e-6, atol=1e-7)


def test_record_lengths_give_mask():
    layer = torchlnn.CfC(4, small_ncp())
    activity = record_activity(layer, torch.randn(3, 6, 4), lengths=[6, 2, 4])
    np.testing.assert_array_equal(activity.mask.sum(axis=1), [6, 2, 4])
    assert activity.valid_states().shape == (12, 10)


def test_record_inside_policy():
    torch.manual_seed(1)
    policy = TinyPolicy()
    frames = torch.rand(2, 5, 3, 24, 32)
    activity = record_activity(policy, frames)

    direct = policy.rnn.forward_with_states(policy.features(frames))
    np.testing.assert_allclose(activity.states, direct.states.detach().numpy(), rtol=1e-6)
    np.testing.assert_array_equal(activity.outputs, policy(frames).double().detach().numpy())
    assert "forward" not in vars(policy.rnn)  # the patched forward is removed again


def test_record_streaming_joins_calls():
    torch.manual_seed(1)
    streaming = StreamingPolicy()
    whole = TinyPolicy()
    whole.load_state_dict(streaming.state_dict())
    frames = torch.rand(2, 6, 3, 24, 32)

    joined = record_activity(streaming, frames)
    reference = record_activity(whole, frames)
    assert joined.states.shape == (2, 6, 8)
    np.testing.assert_allclose(joined.states, reference.states, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU])
def test_record_torch_rnn(kind):
    rnn = kind(4, 8, num_layers=2, batch_first=True)
    x = torch.randn(3, 10, 4)
    activity = record_activity(rnn, x)
    output, _ = rnn(x)
    np.testing.assert_allclose(activity.states, output.detach().numpy(), rtol=1e-5, atol=1e-7)
    assert activity.neuron_types == ["hidden"] * 8
    assert activity.layer_name == kind.__name__


def test_record_torch_rnn_in_model_time_major():
    class Baseline(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 6)  # time-major
            self.head = nn.Linear(6, 1)

        def forward(self, x):  # x: (B, T, F)
            hidden, _ = self.lstm(x.transpose(0, 1))
            return self.head(hidden.transpose(0, 1))

    model = Baseline()
    x = torch.randn(2, 7, 4)
    activity = record_activity(model, x)
    hidden, _ = model.lstm(x.transpose(0, 1))
    np.testing.assert_allclose(activity.states, hidden.transpose(0, 1).detach().numpy(), rtol=1e-6)
    assert activity.outputs.shape == (2, 7, 1)


def test_record_rejects_models_without_one_layer():
    with pytest.raises(ValueError, match="contains no recurrent layer"):
        record_activity(nn.Sequential(nn.Linear(4, 2)), torch.randn(2, 4))

    two = nn.ModuleDict({"a": torchlnn.CfC(4, 5), "b": nn.GRU(4, 5)})
    with pytest.raises(ValueError, match="2 recurrent layers"):
        record_activity(two, torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="takes no timespans"):
        record_activity(nn.GRU(4, 3, batch_first=True), torch.randn(2, 3, 4), timespans=0.5)


def test_pca_matches_numpy_eigendecomposition():
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(6, 6)) * np.array([3.0, 1.5, 1.0, 0.5, 0.2, 0.1])[:, None]
    states = rng.normal(size=(4, 50, 6)) @ mixing  # (B, T, N), unequal variances

    pca = activity_pca(states)
    rows = states.reshape(-1, 6)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(rows, rowvar=False))
    order = np.argsort(eigenvalues)[::-1]
    np.testing.assert_allclose(pca.explained_variance, eigenvalues[order], rtol=1e-10)
    np.testing.assert_allclose(
        pca.explained_variance_ratio, eigenvalues[order] / eigenvalues.sum(), rtol=1e-10
    )
    assert pca.explained_variance_ratio.sum() == pytest.approx(1.0)
    for k in range(6):
        alignment = abs(pca.components[k] @ eigenvectors[:, order[k]])
        assert alignment == pytest.approx(1.0, abs=1e-8)

    projections = (rows - rows.mean(0)) @ pca.components.T
    np.testing.assert_allclose(pca.projections.reshape(-1, 6), projections, atol=1e-10)
    np.testing.assert_allclose(pca.projections.reshape(-1, 6).var(0, ddof=1),
                               pca.explained_variance, rtol=1e-10)


def test_pca_first_component_of_rank_one_activity():
    time = np.linspace(0, 6, 80)
    loadings = np.array([1.0, -2.0, 0.5, 3.0])
    states = (np.sin(time)[:, None] * loadings)[None]  # every neuron follows one signal
    pca = activity_pca(states, n_components=2)
    assert pca.explained_variance_ratio[0] == pytest.approx(1.0)
    assert pca.explained_variance_ratio[1] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(abs(pca.components[0]), abs(loadings) / np.linalg.norm(loadings))
    assert pca.components[0][np.argmax(abs(pca.components[0]))] > 0


def test_pca_mask_and_standardize():
    rng = np.random.default_rng(1)
    states = rng.normal(size=(2, 10, 3)) * np.array([1.0, 10.0, 0.1])
    mask = np.ones((2, 10), dtype=bool)
    mask[1, 6:] = False
    states_with_junk = states.copy()
    states_with_junk[1, 6:] = 1e6  # padded steps must be ignored

    pca = activity_pca(states_with_junk, mask=mask)
    reference = activity_pca(states[mask])
    np.testing.assert_allclose(pca.explained_variance, reference.explained_variance)
    assert np.isnan(pca.projections[1, 6:]).all()

    standardized = activity_pca(states[mask], standardize=True)
    correlation = np.corrcoef(states[mask], rowvar=False)
    np.testing.assert_allclose(standardized.explained_variance,
                               np.sort(np.linalg.eigvalsh(correlation))[::-1], rtol=1e-10)


def test_pca_compares_ltc_and_lstm():
    x = torch.randn(2, 30, 4)
    results = {
        "ltc": activity_pca(record_activity(torchlnn.LTC(4, small_ncp()), x)),
        "lstm": activity_pca(record_activity(nn.LSTM(4, 10, batch_first=True), x)),
    }
    for pca in results.values():
        assert pca.components.shape == (10, 10)
        assert 0 < pca.explained_variance_ratio[0] <= 1


def test_pca_rejects_bad_input():
    with pytest.raises(ValueError, match="n_components must be in"):
        activity_pca(np.random.default_rng(0).normal(size=(5, 3)), n_components=4)
    with pytest.raises(ValueError, match="does not vary"):
        activity_pca(np.ones((1, 5, 3)))
    with pytest.raises(ValueError, match="at least 2 real steps"):
        activity_pca(np.ones((1, 1, 3)))


def test_correlation_matches_numpy():
    rng = np.random.default_rng(2)
    states = rng.normal(size=(3, 20, 5))
    outputs = states[..., :2] @ np.array([[1.0, 0.2], [-0.5, 1.0]]) + rng.normal(size=(3, 20, 2))
    correlation = neuron_output_correlation(states, outputs)
    rows_x, rows_y = states.reshape(-1, 5), outputs.reshape(-1, 2)
    for i in range(5):
        for o in range(2):
            expected = np.corrcoef(rows_x[:, i], rows_y[:, o])[0, 1]
            assert correlation[i, o] == pytest.approx(expected)


def test_correlation_constant_neuron_is_nan():
    states = np.random.default_rng(3).normal(size=(2, 8, 3))
    states[..., 1] = 0.7
    activity_outputs = states[..., :1] * 2.0
    correlation = neuron_output_correlation(states, activity_outputs[..., 0])  # (B, T) outputs
    assert correlation.shape == (3, 1)
    assert correlation[0, 0] == pytest.approx(1.0)
    assert np.isnan(correlation[1, 0])


def test_correlation_of_recorded_activity():
    layer = torchlnn.LTC(4, small_ncp())
    activity = record_activity(layer, torch.randn(2, 12, 4))
    correlation = neuron_output_correlation(activity)
    # The output is an affine map of motor neuron 0, so their correlation is +-1.
    assert abs(correlation[0, 0]) == pytest.approx(1.0)
    final_only = record_activity(torchlnn.LTC(4, small_ncp(), return_sequences=False),
                                 torch.randn(2, 12, 4))
    with pytest.raises(ValueError, match="return_sequences=True"):
        neuron_output_correlation(final_only)


def test_record_direct_forward_with_states():
    class Direct(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torchlnn.CfC(4, small_ncp())

        def forward(self, x):
            return self.rnn.forward_with_states(x).output

    model = Direct()
    x = torch.randn(2, 5, 4)
    activity = record_activity(model, x)
    with torch.no_grad():
        expected = model.rnn.forward_with_states(x).states
    np.testing.assert_allclose(activity.states, expected)
    assert "forward_with_states" not in vars(model.rnn)
