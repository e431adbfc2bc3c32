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
                          "gender_uar": [0.6, 0.95]})
    fig = plotting.plot_probe_summary(table, {"a": [0.25, 0.35]},
                                      references={"wav2vec2": 0.82, "CNNs": (0.57, 0.62)})
    emo, _, spk = fig.get_axes()
    legend = [t.get_text() for t in emo.get_legend().get_texts()]
    assert any(s.startswith("chance 0.125") for s in legend)
    assert any("wav2vec2" in s for s in legend) and any("0.57-0.62" in s for s in legend)
    assert "not run" in [t.get_text() for t in spk.texts]
    plt.close("all")


def test_plot_probe_summary_draws_the_interval_when_the_table_has_one():
    table = pd.DataFrame({"representation": ["a"], "emotion_uar_mean": [0.3], "emotion_uar_ci_low": [0.2],
                          "emotion_uar_ci_high": [0.45], "speaker_id_acc": [0.1], "gender_uar": [0.7]})
    fig = plotting.plot_probe_summary(table)
    emo = fig.get_axes()[0]
    segments = [seg for coll in emo.collections for seg in getattr(coll, "get_segments", lambda: [])()]
    xs = sorted({round(float(x), 3) for seg in segments for x in np.asarray(seg)[:, 0]})
    assert 0.2 in xs and 0.45 in xs  # the bar's error line spans the 95 % interval, asymmetric
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


# --- loss bands over seeds (Figures 3 and 5) --------------------------------------


def _history(n: int, scale: float = 1.0, seed: int = 0, start: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    epochs = np.arange(start, start + n)
    return pd.DataFrame({"epoch": epochs, "reconstruction": scale * 900.0 / epochs + rng.random(n),
                         "kl": 8.0 + rng.random(n)})


def _fill_betweens(ax) -> list:
    return [c for c in ax.collections if isinstance(c, matplotlib.collections.PolyCollection)]


def test_plot_loss_bands_one_band_and_line_per_group_with_seed_counts():
    groups = {"Actor 01": {s: _history(200, 1.0, s) for s in range(5)},
              "12 male actors": {s: _history(200, 0.5, 10 + s) for s in range(3)}}
    fig = plotting.plot_loss_bands(groups, recon_ylim=(0, 350), kl_ylim=(0, 14), title="t")
    for ax in fig.axes:
        assert len(_fill_betweens(ax)) == 2 and len(ax.get_lines()) == 2
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["Actor 01 (5 seeds)",
                                                                              "12 male actors (3 seeds)"]
    assert fig.axes[0].get_ylim() == (0, 350) and fig.axes[1].get_ylim() == (0, 14)
    plt.close(fig)


def test_plot_loss_bands_range_and_ci_bands():
    runs = {s: _history(100, 1.0, s) for s in range(4)}
    stacked = np.stack([h["kl"].to_numpy() for h in runs.values()])
    fig = plotting.plot_loss_bands({"a": runs}, band="range")
    verts = _fill_betweens(fig.axes[1])[0].get_paths()[0].vertices[:, 1]
    assert np.isclose(verts.min(), stacked.min()) and np.isclose(verts.max(), stacked.max())
    plt.close(fig)
    fig = plotting.plot_loss_bands({"a": runs}, band="ci")
    verts = _fill_betweens(fig.axes[1])[0].get_paths()[0].vertices[:, 1]
    half = 3.182446 * stacked.std(axis=0, ddof=1) / 2  # Student t(0.975, 3) * sd / sqrt(4)
    mean = stacked.mean(axis=0)
    assert np.isclose(verts.min(), (mean - half).min()) and np.isclose(verts.max(), (mean + half).max())
    plt.close(fig)
    with pytest.raises(ValueError, match="band"):
        plotting.plot_loss_bands({"a": runs}, band="sd")


def test_plot_loss_bands_unequal_lengths_use_common_epochs_and_one_seed_has_no_band():
    groups = {"a": {0: _history(300), 1: _history(250, seed=1), 2: _history(280, seed=2, start=11)},
              "b": {7: _history(120, seed=3)}}
    fig = plotting.plot_loss_bands(groups)
    line_a, line_b = fig.axes[0].get_lines()
    assert line_a.get_xdata()[0] == 11 and line_a.get_xdata()[-1] == 250
    assert len(_fill_betweens(fig.axes[0])) == 1  # group "b" has a single seed: a line, no band
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a (3 seeds)", "b (1 seed)"]
    plt.close(fig)
    with pytest.raises(ValueError, match="share no epoch"):
        plotting.plot_loss_bands({"a": {0: _history(10), 1: _history(10, start=100)}})


def test_plot_loss_bands_baseline_above_ylim_raises_it_and_is_labelled():
    groups = {"a": {s: _history(200, 0.2, s) for s in range(2)}}
    fig = plotting.plot_loss_bands(groups, recon_ylim=(0, 150), kl_ylim=(0, 14),
                                   baselines={"mean spectrogram of the training clips: 193 dB²": 193.0})
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] > 193.0
    assert any(t.get_text().startswith("mean spectrogram") for t in ax.texts)
    assert any(list(line.get_ydata()) == [193.0, 193.0] and line.get_linestyle() == ":" for line in ax.get_lines())
    assert fig.axes[1].get_ylim() == (0, 14)  # baselines belong to the reconstruction panel only
    plt.close(fig)
    fig = plotting.plot_loss_bands(groups, recon_ylim=(0, 900), baselines={"b": 193.0})
    assert fig.axes[0].get_ylim() == (0, 900)  # already inside: the report's axis stays
    plt.close(fig)


def test_plot_loss_bands_marks_lines_and_spans():
    groups = {"a": {s: _history(200, 1.0, s) for s in range(2)}}
    fig = plotting.plot_loss_bands(groups, marks={"flat from (2 seeds)": (50, 80), "x": 120})
    for ax in fig.axes:
        spans = [p for p in ax.patches if isinstance(p, (matplotlib.patches.Rectangle, matplotlib.patches.Polygon))
                 and p is not ax.patch]
        assert len(spans) == 1
        assert any(list(line.get_xdata()) == [120, 120] for line in ax.get_lines())
    assert [t.get_text() for t in fig.axes[0].texts] == [" flat from (2 seeds)", " x"]
    plt.close(fig)


def test_plot_loss_bands_thins_long_histories():
    n = 25_000
    groups = {"a": {s: _history(n, 1.0, s) for s in range(5)}}
    fig = plotting.plot_loss_bands(groups, max_points=2000)
    for ax in fig.axes:
        line = ax.get_lines()[0]
        assert len(line.get_xdata()) <= 2000
        assert line.get_xdata()[0] == pytest.approx(7.0)  # first block: epochs 1..13, k = ceil(25000 / 2000)
        assert len(_fill_betweens(ax)[0].get_paths()[0].vertices) <= 2 * 2000 + 5
    plt.close(fig)
    fig = plotting.plot_losses({"a": _history(n)})
    assert len(fig.axes[0].get_lines()[0].get_xdata()) <= 2000
    plt.close(fig)


def test_plot_losses_is_one_line_per_history_without_bands():
    fig = plotting.plot_losses({"a": _history(50), "b": _history(80, seed=1)}, marks={"span": (10, 20)})
    assert len(fig.axes[0].get_lines()) == 2 and not _fill_betweens(fig.axes[0])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "b"]  # labels unchanged
    assert [ax.get_title() for ax in fig.axes] == ["Reconstruction", "KL"]
    plt.close(fig)
    fig = plotting.plot_losses({"a": _history(50)})
    assert fig.axes[0].get_legend() is None
    plt.close(fig)


# --- inactive dimensions and a shared sigma axis (Figures 4 and 6) -----------------


def test_plot_mu_sigma_by_emotion_marks_inactive_dimensions():
    mu, sigma, emotions = _posterior()
    active = [True] * 8
    active[1] = active[5] = False
    sigma[:, [1, 5]] = 1.0
    fig = plotting.plot_mu_sigma_by_emotion(mu, sigma, emotions, highlight=(4, 5, 6), active=active)
    visible = [ax for ax in fig.get_axes() if ax.get_visible()]
    inactive = [ax for ax in visible if "inactive" in ax.get_title()]
    assert [ax.get_title().split(" ·")[0] for ax in inactive] == ["dim 1", "dim 5", "dim 5"]  # panel a and b
    assert all("prior noise" in ax.get_title() for ax in inactive)
    assert all(ax.get_facecolor() != visible[0].get_facecolor() for ax in inactive)
    assert all(ax.collections[0].get_alpha() < visible[0].collections[0].get_alpha() for ax in inactive)
    with pytest.raises(ValueError, match="active"):
        plotting.plot_mu_sigma_by_emotion(mu, sigma, emotions, active=[True] * 7)
    plt.close(fig)


def test_plot_mu_sigma_shared_sigma_gives_equal_y_limits():
    mu, sigma, emotions = _posterior()
    fig = plotting.plot_mu_sigma_by_emotion(mu, sigma, emotions, shared_sigma=True)
    visible = [ax for ax in fig.get_axes() if ax.get_visible()]
    assert len(visible) == 11 and {ax.get_ylim() for ax in visible} == {(0, max(1.05, float(sigma.max())))}
    plt.close(fig)
    fig = plotting.plot_mu_sigma_by_emotion(mu, sigma, emotions)  # default: each panel on its own scale
    assert len({ax.get_ylim() for ax in fig.get_axes() if ax.get_visible()}) > 1
    plt.close(fig)
    fig = plotting.plot_mu_sigma_by_dimension(mu, sigma * 0.1, shared_sigma=True)
    assert [ax.get_ylim() for ax in fig.axes] == [(0, 1.05), (0, 1.05)]
    plt.close(fig)


def test_plot_mu_sigma_by_dimension_fades_inactive_dimensions():
    mu, sigma, _ = _posterior(d=8)
    active = [d not in (1, 5) for d in range(8)]
    fig = plotting.plot_mu_sigma_by_dimension(mu, sigma, highlight=(5,), active=active)
    a, b = fig.get_axes()
    assert len(a.collections) == 8
    labels = [t.get_text() for t in a.get_legend().get_texts()]
    assert labels[1] == "dim 1 · inactive" and labels[0] == "dim 0"
    assert "inactive 1, 5" in a.get_title() and "inactive" in b.get_title()  # b shows only dim 5
    plt.close(fig)


# --- robustness of "k of 8 dimensions separate emotions" ----------------------------


def test_plot_count_sensitivity_one_row_per_setting():
    settings = ["NMI ≥ 0.10, 20 equal-width bins", "NMI ≥ 0.05, 20 equal-width bins", "NMI ≥ 0.10, 10 quantile bins"]
    counts = {settings[0]: [3, 3, 2, 3, 4], settings[1]: [4, 5, 4, 4, 4], settings[2]: [2, 2, 3, 1, 2]}
    table = pd.DataFrame([(seed, s, c) for s in settings for seed, c in enumerate(counts[s])],
                         columns=["seed", "setting", "count"])
    fig = plotting.plot_count_sensitivity(table, claimed=(3, "report"), title="t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == settings
    assert list(ax.get_xticks()) == list(range(9))
    dots = [c for c in ax.collections if c.get_offsets().shape[0] == 5]
    assert len(dots) == 3
    assert np.array_equal(np.sort(dots[0].get_offsets()[:, 0]), [2, 3, 3, 3, 4])  # x stays the exact count
    assert any(list(line.get_xdata()) == [3, 3] for line in ax.get_lines())
    assert any("report: 3" == t.get_text() for t in fig.legends[0].get_texts())
    assert "3/5 seeds at 3" in ax.texts[0].get_text()
    plt.close(fig)
    with pytest.raises(ValueError, match="count"):
        plotting.plot_count_sensitivity(table.drop(columns="count"))


def test_plot_loss_bands_nan_marks_are_legend_entries_and_nan_baselines_are_left_out():
    groups = {"a": {s: _history(100, 1.0, s) for s in range(2)}}
    fig = plotting.plot_loss_bands(groups, recon_ylim=(0, 350), marks={"never flat": (np.nan, np.nan), "x": 20},
                                   baselines={"nan": np.nan})
    assert [t.get_text() for t in fig.axes[0].texts] == [" x"] and fig.axes[0].get_ylim() == (0, 350)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a (2 seeds)", "never flat"]
    plt.close(fig)


def test_flat_marks_draw_only_the_seeds_that_flatten():
    # The smoke run's case: no seed flattens, so nothing is drawn as flat (no span, no line at the last epoch).
    groups = {"Actor 01": {s: _history(40, 1.0, s) for s in range(2)}}
    marks = plotting.flat_marks({"": [np.nan, np.nan]})
    assert list(marks) == ["flat (flat rule) in 0 of 2 seeds"]
    fig = plotting.plot_loss_bands(groups, marks=marks)
    for ax in fig.axes:
        assert not [p for p in ax.patches if p is not ax.patch] and not fig.axes[0].texts
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "Actor 01 (2 seeds)", "flat (flat rule) in 0 of 2 seeds"]
    plt.close(fig)
    assert plotting.flat_marks({"3 male actors": [30.0, np.nan, 20.0]}) == {
        "3 male actors: flat (flat rule) in 2 of 3 seeds, 20-30": (20.0, 30.0)}
