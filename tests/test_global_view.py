"""core.studies.global_view and core.figures.global_view: hand-computed answers on tiny models, scikit-learn's
PCA as the reference, degenerate layers with a defined value and a note, models and inputs unchanged."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.decomposition import PCA
from torch import nn

from core.explain.attribution import attribute
from core.figures import global_view as F
from core.studies import global_view as G

torch.set_num_threads(1)


def _mlp() -> nn.Module:
    """Flatten -> Linear(4, 3) -> ReLU -> Linear(3, 2); unit 2 of the hidden layer has weights 0 and bias -1."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).eval()
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 0]]))
        model[1].bias.copy_(torch.tensor([0.0, 0.0, -1.0]))
        model[3].weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))
        model[3].bias.zero_()
    return model


def _x() -> torch.Tensor:
    return torch.tensor([[1.0, -1, 0, 0], [-1, -1, 0, 0], [2, -3, 1, 1]]).reshape(3, 1, 2, 2)


def test_penultimate_is_what_enters_the_last_layer_and_leaves_no_hook():
    model, x = _mlp(), _x()
    before, x_before = {k: v.clone() for k, v in model.state_dict().items()}, x.clone()
    features = G.penultimate(model, x)
    expected = torch.relu(model[1](x.flatten(1)))
    assert torch.equal(features, expected)
    assert torch.equal(x, x_before) and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())


def test_unit_activity_counts_units_that_never_fire():
    # hidden unit 0 fires on images 0 and 2, unit 1 never (inputs -1, -1, -3), unit 2 never (bias -1)
    table = G.unit_activity(_mlp(), _x())
    assert table[["units", "silent"]].values.tolist() == [[3, 2]]
    assert table.silent_share.iloc[0] == pytest.approx(2 / 3) and not table.no_units.iloc[0]


def test_a_conv_channel_fires_when_any_position_is_positive():
    conv = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2)).eval()
    with torch.no_grad():
        conv[0].weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        conv[0].bias.zero_()
    x = torch.zeros(1, 1, 2, 2)
    x[0, 0, 1, 1] = 0.5  # one positive pixel: channel 0 fires there, channel 1 (negated) never
    assert G.unit_activity(conv, x)[["units", "silent"]].values.tolist() == [[2, 1]]


def test_silent_notes_for_a_dead_layer_and_a_layer_with_no_units():
    table = pd.DataFrame([{"layer": "fc 1 (3×4)", "units": 3, "silent": 3, "silent_share": 1.0, "no_units": False},
                          {"layer": "fc 2 (0×3)", "units": 0, "silent": 0, "silent_share": 1.0, "no_units": True}])
    notes = F.silent_notes(table, "Compressed")
    assert notes[0].startswith("Compressed: no unit of fc 1 fires") and "fc 2 has no units left" in notes[1]
    fig = F.silent_units_figure(table, table)
    assert list(fig.data[1].y) == [100.0, 100.0] and "fc 1" in fig.layout.meta["caption"]


def test_pca_is_fitted_on_the_original_and_applied_to_both():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn((40, 6), generator=g), torch.randn((40, 6), generator=g)
    mine_a, mine_b, note = G.embedding(a, b, "pca")
    pca = PCA(n_components=2, random_state=0).fit(a.double().numpy())
    np.testing.assert_allclose(mine_a, pca.transform(a.double().numpy()), atol=1e-9)
    np.testing.assert_allclose(mine_b, pca.transform(b.double().numpy()), atol=1e-9)
    assert "%" in note and "fitted on the original" in note
    same_a, same_b, _ = G.embedding(a, a, "pca")
    np.testing.assert_allclose(same_a, same_b)  # an unchanged model lands on the same points


def test_tsne_embeds_both_together_and_bad_inputs_are_defined():
    g = torch.Generator().manual_seed(1)
    a = torch.randn((12, 4), generator=g)
    ta, tb, note = G.embedding(a, a + 0.01, "tsne")
    assert ta.shape == tb.shape == (12, 2) and np.isfinite(ta).all() and "together" in note
    za, zb, note = G.embedding(torch.randn(5, 1), torch.randn(5, 1), "pca")
    assert not za.any() and not zb.any() and "at 0" in note
    with pytest.raises(ValueError, match="choose one of pca, tsne"):
        G.embedding(a, a, "umap")


def test_class_average_maps_average_each_class_and_leave_a_missing_class_blank():
    model, x = _mlp(), _x()
    y = torch.tensor([0, 0, 1])
    maps, counts = G.class_average_maps(model, x, y, "saliency", classes=3)
    assert counts.tolist() == [2, 1, 0]
    expected = attribute(model, x, y, "saliency")
    assert torch.allclose(maps[0], expected[:2].mean(0)) and torch.allclose(maps[1], expected[2])
    assert not maps[2].any()


def test_first_filters_sum_the_input_channels_and_are_none_without_a_conv():
    assert G.first_filters(_mlp()) is None
    conv = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(3, 2))
    label, filters = G.first_filters(conv)
    assert label.startswith("conv 1") and torch.equal(filters, conv[0].weight.detach().sum(1))


def test_embedding_figure_rings_the_changed_answers():
    coords = np.arange(8.0).reshape(4, 2)
    fig = F.embedding_figure(coords, coords, np.array([0, 1, 1, 0]), np.array([0, 1, 1, 0]),
                             np.array([0, 1, 0, 0]), ["0", "1"])
    ringed = [t for t in fig.data if t.name == "prediction changed"]
    assert len(ringed) == 2 and all(list(t.x) == [4.0] for t in ringed)
    assert "the 1 image whose answer changed" in fig.layout.meta["caption"]


def test_selected_indices_read_lists_and_typed_arrays_once_each_in_order():
    points = [{"customdata": {"1": 4, "0": 12, "2": 4, "3": 9}},  # a typed array, as Chromium sends it
              {"customdata": [3, 1, 1, 1]},
              {"customdata": {"0": 12.0}},                         # the same image in the other panel or its ring
              {"customdata": [999]}, {"customdata": [-1]}, {"customdata": ["x"]}, {"customdata": []}, {"x": 1.0}]
    assert G.selected_indices(points, n_test=100) == [12, 3]
    assert G.selected_indices([], n_test=100) == []


def test_class_average_maps_in_chunks_equal_one_call_and_report_progress(monkeypatch):
    model, x = _mlp(), torch.randn(7, 1, 2, 2, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 1, 0, 1, 0, 1, 1])
    whole, counts = G.class_average_maps(model, x, y, "saliency", classes=2)
    monkeypatch.setattr(G, "MAP_CHUNK", 2)
    seen = []
    chunked, same_counts = G.class_average_maps(model, x, y, "saliency", classes=2,
                                                progress=lambda f, words: seen.append((f, words)))
    assert torch.allclose(whole, chunked) and counts.tolist() == same_counts.tolist() == [3, 4]
    assert [f for f, _ in seen] == pytest.approx([2 / 7, 4 / 7, 6 / 7, 1.0]) and seen[-1][1] == "7 of 7 maps"


def test_embedding_points_carry_their_test_image_index():
    coords = np.arange(6.0).reshape(3, 2)
    fig = F.embedding_figure(coords, coords, np.array([0, 1, 1]), np.array([0, 1, 1]), np.array([0, 1, 0]),
                             ["0", "1"], indices=np.array([10, 20, 30]))
    firsts = {int(row[0]) for t in fig.data for row in t.customdata}
    assert firsts == {10, 20, 30} and "Click a dot" in fig.layout.meta["caption"]
    ringed = next(t for t in fig.data if t.name == "prediction changed")
    assert [int(row[0]) for row in ringed.customdata] == [30]
