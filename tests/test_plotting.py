"""Tests of emovae_utils.plotting on synthetic data (figures are built, checked and closed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from emovae_utils import plotting  # noqa: E402


# --- section 5.3 figures (notebook 05) --------------------------------------------


def _posterior(n: int = 64, d: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    emotions = np.array(list(plotting.EMOTION_COLORS))[np.arange(n) % 8]
    mu = rng.standard_normal((n, d))
    return mu, np.exp(0.5 * rng.standard_normal((n, d)) - 1), emotions


def test_plot_mu_sigma_by_emotion_has_a_panel_per_dimension_and_panel_b(tmp_path):
    mu, sigma, emotions = _posterior()
    fig = plotting.plot_mu_sigma_by_emotion(mu, sigma, emotions, highlight=(4, 5, 6), nmi=np.linspace(0, 1, 8),
                                            title="t")
    visible = [ax for ax in fig.get_axes() if ax.get_visible()]
    assert len(visible) == 8 + 3
    assert any("NMI 1.00" in ax.get_title() for ax in visible)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == list(plotting.EMOTION_COLORS)  # emotion order, every emotion once
    assert plotting.save_figure(fig, "mu_sigma", tmp_path).stat().st_size > 0
    with pytest.raises(ValueError):
        plotting.plot_mu_sigma_by_emotion(mu, sigma[:, :4], emotions)
    plt.close("all")


def test_plot_mu_sigma_by_dimension_colours_by_dimension():
    mu, sigma, _ = _posterior(d=8)
    fig = plotting.plot_mu_sigma_by_dimension(mu, sigma, highlight=(4, 5, 6))
    a, b = fig.get_axes()
    assert len(a.collections) == 8 and len(b.collections) == 3
    assert [t.get_text() for t in b.get_legend().get_texts()] == ["dim 4", "dim 5", "dim 6"]
    plt.close("all")


def test_plot_mi_heatmaps_and_confusion_matrices():
    dims = pd.RangeIndex(8, name="dim")
    tables = {n: pd.DataFrame(np.random.default_rng(k).random((8, 4)), index=dims,
                              columns=["emotion", "actor", "gender", "intensity"]) for k, n in enumerate("ab")}
    migs = {n: pd.Series([0.1, 0.2, 0.3, 0.4], index=t.columns) for n, t in tables.items()}
    fig = plotting.plot_mi_heatmaps(tables, migs)
    assert "MIG: emotion 0.10" in fig.get_axes()[0].get_xlabel()
    classes = list(plotting.EMOTION_COLORS)
    conf = pd.DataFrame(np.eye(8, dtype=int) * 5 + 1, index=classes[::-1], columns=classes[::-1])
    fig = plotting.plot_confusion_matrices({"x": conf, "y": conf}, ncols=3)
    ax = fig.get_axes()[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == classes  # reordered to emotion order
    assert "0.46" in ax.get_title()  # recall 6/13 per class
    plt.close("all")


def test_plot_probe_summary_draws_chance_and_references():
    table = pd.DataFrame({"representation": ["a", "b"], "dims": [8, 160], "emotion_uar_mean": [0.3, 0.5],
                          "emotion_uar_std": [0.05, 0.02], "speaker_id_acc": [np.nan, 0.9],
                          "gender_acc": [0.6, 0.95]})
    fig = plotting.plot_probe_summary(table, {"a": [0.25, 0.35]},
                                      references={"wav2vec2": 0.82, "CNNs": (0.57, 0.62)})
    emo, _, spk = fig.get_axes()
    legend = [t.get_text() for t in emo.get_legend().get_texts()]
    assert any(s.startswith("chance 0.125") for s in legend)
    assert any("wav2vec2" in s for s in legend) and any("0.57-0.62" in s for s in legend)
    assert "not run" in [t.get_text() for t in spk.texts]
    plt.close("all")


def test_plot_embedding_grid_rows_and_columns():
    rng = np.random.default_rng(0)
    _, _, emotions = _posterior(48)
    actors = np.arange(48) % 24 + 1
    fig = plotting.plot_embedding_grid({"enc1": rng.random((48, 2)), "enc2": rng.random((48, 2))},
                                       {"emotion": emotions, "actor": actors})
    assert len(fig.get_axes()) == 4
    assert len(fig.get_axes()[3].get_legend().get_texts()) == 24
    with pytest.raises(ValueError):
        plotting.plot_embedding_grid({"bad": rng.random((5, 2))}, {"emotion": emotions})
    plt.close("all")


# --- section 5.2 figures (notebook 03) --------------------------------------------


def test_plot_latent_traversal_rows_columns_and_difference(tmp_path):
    rng = np.random.default_rng(0)
    grid = rng.normal(-40, 10, size=(3, 4, 80, 128)).astype(np.float32)
    grid[1] = grid[1, :1]  # row 1 does not change along the sweep
    values = np.linspace(-3, 3, 4)
    fig = plotting.plot_latent_traversal(grid, values, dims=(0, 4, 7), title="t")
    axes = np.array([ax for ax in fig.get_axes() if ax.get_label() != "<colorbar>"]).reshape(3, 5)
    assert [ax.get_title() for ax in axes[0, :4]] == ["z = -3", "z = -1", "z = +1", "z = +3"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["z0", "z4", "z7"]
    assert axes[1, -1].get_title() == "RMS 0.0 dB"  # constant row: blank difference panel
    assert axes[0, -1].get_title().startswith("(+3) - (-3)")
    assert len([ax for ax in fig.get_axes() if ax.get_label() == "<colorbar>"]) == 2
    assert plotting.save_figure(fig, "traversal", tmp_path).stat().st_size > 0
    fig = plotting.plot_latent_traversal(grid[:, :2], [0, 1], difference=False)
    assert len([ax for ax in fig.get_axes() if ax.get_label() != "<colorbar>"]) == 3 * 2
    with pytest.raises(ValueError, match="values"):
        plotting.plot_latent_traversal(grid, [0, 1])
    with pytest.raises(ValueError, match="grid"):
        plotting.plot_latent_traversal(grid[0], values)
    plt.close("all")


def test_plot_losses_keeps_report_axes_unless_the_curves_leave_them():
    import pandas as pd

    from emovae_utils import plotting

    epochs = np.arange(1, 201)
    low = pd.DataFrame({"epoch": epochs, "reconstruction": 900.0 / epochs, "kl": np.full(200, 8.0)})
    high = low.assign(kl=np.full(200, 16.0))
    fig = plotting.plot_losses({"a": low}, recon_ylim=(0, 350), kl_ylim=(0, 14), marks={"x": 50, "y": 60})
    assert fig.axes[0].get_ylim() == (0, 350) and fig.axes[1].get_ylim() == (0, 14)
    assert len(fig.axes[0].texts) == 2 and fig.axes[0].texts[0].get_position()[1] != fig.axes[0].texts[1].get_position()[1]
    fig = plotting.plot_losses({"a": low, "b": high}, recon_ylim=(0, 350), kl_ylim=(0, 14))
    assert fig.axes[1].get_ylim()[1] >= 16.0
