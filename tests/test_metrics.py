"""Tests of emovae_utils.metrics on synthetic data whose answer is known."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mutual_info_score
from threadpoolctl import threadpool_limits

from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.metrics import balanced_accuracy_score

from emovae_utils import data
from emovae_utils import metrics as m
from emovae_utils.generate import encode_posterior
from emovae_utils.metrics import baselines

N_ACTORS = 24


@pytest.fixture(autouse=True, scope="module")
def _single_blas_thread():
    """One BLAS thread: on a busy 2-core machine, 2 OpenBLAS threads made PCA ~30x slower."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """RAVDESS statement-01 design: 24 actors x 30 clips (no strong neutral)."""
    rows = []
    for actor, emotion, intensity, repetition in itertools.product(
        range(1, N_ACTORS + 1), range(1, 9), (1, 2), (1, 2)
    ):
        if emotion == 1 and intensity == 2:
            continue
        rows.append(
            {
                "emotion": emotion,
                "actor": actor,
                "gender": "male" if actor % 2 else "female",
                "intensity": intensity,
                "repetition": repetition,
            }
        )
    df = pd.DataFrame(rows)
    assert len(df) == N_ACTORS * 30
    return df


@pytest.fixture(scope="module")
def factors(table: pd.DataFrame) -> pd.DataFrame:
    return table[["emotion", "actor", "gender", "intensity"]]


@pytest.fixture(scope="module")
def codes(table: pd.DataFrame) -> np.ndarray:
    """dim 0 = emotion + small noise, dim 1 = actor offset + small noise, dim 2 = noise."""
    rng = np.random.default_rng(0)
    n = len(table)
    return np.column_stack(
        [
            table["emotion"].to_numpy() + 0.05 * rng.standard_normal(n),
            table["actor"].to_numpy() * 1.0 + 0.05 * rng.standard_normal(n),
            rng.standard_normal(n),
        ]
    )


def _class_features(labels: np.ndarray, dim: int = 8, scale: float = 3.0, seed: int = 1) -> np.ndarray:
    """Features = a random mean per class + unit noise (linearly separable classes)."""
    rng = np.random.default_rng(seed)
    classes, idx = np.unique(labels, return_inverse=True)
    means = scale * rng.standard_normal((classes.size, dim))
    return means[idx] + 0.5 * rng.standard_normal((labels.size, dim))


def _noise(n: int, dim: int = 8, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim))


# --- folds -----------------------------------------------------------------


def test_actor_folds_partition_the_24_actors() -> None:
    assert m.ACTOR_FOLDS is data.ACTOR_FOLDS  # one home: emovae_utils.data
    assert len(m.ACTOR_FOLDS) == 5
    flat = [a for fold in m.ACTOR_FOLDS for a in fold]
    assert sorted(flat) == list(range(1, 25))
    assert m.ACTOR_FOLDS[0] == (2, 5, 14, 15, 16) and m.ACTOR_FOLDS[-1] == (1, 4, 9, 22)


def test_held_out_splits_hold_out_whole_groups(table: pd.DataFrame) -> None:
    actors = table["actor"].to_numpy()
    splits = m.held_out_splits(actors, m.ACTOR_FOLDS)
    tested = np.zeros(len(actors), dtype=int)
    for (train, test), fold in zip(splits, m.ACTOR_FOLDS):
        assert set(actors[test]) == set(fold)
        assert not set(actors[train]) & set(actors[test])
        tested[test] += 1
    assert np.all(tested == 1)
    with pytest.raises(ValueError):
        m.held_out_splits(actors, ((1, 2), (2, 3)))
    with pytest.raises(ValueError):
        m.held_out_splits(actors, ((99,),))


def test_predefined_split_is_the_actor_folds(table: pd.DataFrame) -> None:
    """Each actor lies wholly in one test fold, the one ACTOR_FOLDS gives it."""
    actors = table["actor"].to_numpy()
    split = m.predefined_split(actors)
    assert split.get_n_splits() == 5
    for actor in range(1, 25):
        (fold,) = set(split.test_fold[actors == actor].tolist())
        assert actor in m.ACTOR_FOLDS[fold]
    tested = [tuple(sorted(set(actors[test].tolist()))) for _, test in split.split()]
    assert tested == [tuple(sorted(f)) for f in m.ACTOR_FOLDS]
    # groups in no fold train in every fold and are never tested
    partial = m.predefined_split(actors, m.ACTOR_FOLDS[:2])
    assert set(actors[partial.test_fold == -1].tolist()) == set(range(1, 25)) - set(m.ACTOR_FOLDS[0] + m.ACTOR_FOLDS[1])
    res = m.probe_uar(_class_features(table["emotion"].to_numpy()), table["emotion"], actors, m.ACTOR_FOLDS[:2])
    assert res.fold_uar.shape == (2,) and (res.predictions[partial.test_fold == -1] == None).all()  # noqa: E711


def test_probe_equals_a_hand_written_fold_loop(table: pd.DataFrame) -> None:
    """cross_validate over the predefined split = fitting the probe on each fold by hand."""
    emo, actors = table["emotion"].to_numpy(), table["actor"].to_numpy()
    X = _class_features(emo, scale=0.4)
    res = m.probe_uar(X, emo, actors, C=0.5)
    for k, fold in enumerate(m.ACTOR_FOLDS):
        test = np.isin(actors, fold)
        pred = m.make_probe(C=0.5).fit(X[~test], emo[~test]).predict(X[test])
        assert res.fold_uar[k] == balanced_accuracy_score(emo[test], pred)
        np.testing.assert_array_equal(res.predictions[test].astype(int), pred)


# --- mutual information ------------------------------------------------------


def test_discretize_is_equal_width_like_disentanglement_lib() -> None:
    z = np.column_stack([np.linspace(0.0, 1.0, 200), np.r_[np.zeros(199), 100.0], np.full(200, 3.0)])
    b = m.discretize_codes(z, n_bins=10)
    assert b.min() >= 0 and b.max() <= 9
    assert np.all(np.bincount(b[:, 0], minlength=10) == 20)  # uniform data: 20 per bin
    assert np.all(b[:199, 1] == 0) and b[199, 1] == 9  # equal width, not equal frequency
    assert np.unique(b[:, 2]).size == 1  # constant dim: one bin
    for j in range(z.shape[1]):  # disentanglement_lib's _histogram_discretize, shifted to 0-based
        ref = np.digitize(z[:, j], np.histogram(z[:, j], 10)[1][:-1]) - 1
        np.testing.assert_array_equal(b[:, j], ref)


def test_mi_matches_sklearn(codes: np.ndarray, factors: pd.DataFrame) -> None:
    mi = m.latent_factor_mi(codes, factors, n_bins=20)
    binned = m.discretize_codes(codes, 20)
    for j, f in itertools.product(range(codes.shape[1]), factors.columns):
        assert mi.loc[j, f] == pytest.approx(mutual_info_score(factors[f], binned[:, j]), abs=1e-10)


def test_factor_entropy(factors: pd.DataFrame) -> None:
    h = m.factor_entropy(factors)
    assert h["actor"] == pytest.approx(np.log(24))
    assert h["gender"] == pytest.approx(np.log(2))
    p = np.array([2] + [4] * 7) / 30  # neutral has no strong intensity
    assert h["emotion"] == pytest.approx(-(p * np.log(p)).sum())


def test_mi_finds_the_encoding_dimensions(codes: np.ndarray, factors: pd.DataFrame) -> None:
    mi = m.latent_factor_mi(codes, factors)
    nmi = m.normalised_mi(codes, factors)
    h = m.factor_entropy(factors)
    assert list(mi.columns) == ["emotion", "actor", "gender", "intensity"]
    assert mi.shape == (3, 4) and mi.index.name == "dim"
    assert mi.loc[0, "emotion"] > 0.95 * h["emotion"]
    assert mi.loc[1, "actor"] > 0.7 * h["actor"]
    assert mi.loc[0, "actor"] < 0.1 * h["actor"]
    assert mi.loc[1, "emotion"] < 0.1 * h["emotion"]
    assert (nmi.loc[2] < 0.15).all(), nmi.loc[2]  # pure noise: only histogram bias
    assert mi.loc[2, "emotion"] < 0.2


def test_mig_one_dim_versus_two_dims(table: pd.DataFrame, factors: pd.DataFrame) -> None:
    rng = np.random.default_rng(3)
    e = table["emotion"].to_numpy().astype(float)
    n = e.size
    def noisy(x: np.ndarray) -> np.ndarray:
        return x + 0.05 * rng.standard_normal(n)

    one = np.column_stack([noisy(e), rng.standard_normal(n), rng.standard_normal(n)])
    two = np.column_stack([noisy(e), noisy(e), rng.standard_normal(n)])
    mig_one = m.mig(one, factors)
    mig_two = m.mig(two, factors)
    assert mig_one["emotion"] > 0.8
    assert mig_two["emotion"] < 0.1
    assert list(mig_one.index) == list(factors.columns)


def test_informative_dims(codes: np.ndarray, factors: pd.DataFrame) -> None:
    info = m.informative_dims(codes, factors, threshold=0.1)
    assert info["emotion"] == [0]
    assert info["actor"] == [1]
    assert all(2 not in dims for dims in info.values())
    null = m.mi_permutation_null(codes, factors, n_permutations=50)
    assert null.shape == (3, 4)
    assert (null["actor"] > null["gender"]).all()  # more classes, more bias
    assert m.informative_dims(codes, factors, threshold=1.01)["emotion"] == []


def test_permutation_null_rejects_histogram_bias() -> None:
    """With few clips per actor a noise dimension has large plug-in MI with actor."""
    rng = np.random.default_rng(6)
    small = pd.DataFrame({"actor": np.repeat(np.arange(1, 25), 5)})
    noise = rng.standard_normal((len(small), 2))
    nmi = m.normalised_mi(noise, small)
    assert (nmi["actor"] > 0.3).all()  # bias alone passes the threshold ...
    assert m.informative_dims(noise, small, threshold=0.1)["actor"] == []  # ... the null does not


# --- probes --------------------------------------------------------------------


def test_emotion_probe_high_for_emotion_features(table: pd.DataFrame) -> None:
    emo, actors = table["emotion"].to_numpy(), table["actor"].to_numpy()
    res = m.probe_uar(_class_features(emo), emo, actors)
    assert res.fold_uar.shape == (5,)
    assert res.uar_mean > 0.95
    assert res.chance == pytest.approx(0.125)
    conf = res.confusion_matrix()
    assert conf.to_numpy().sum() == len(table)
    assert list(conf.index) == list(range(1, 9))
    np.testing.assert_allclose(res.confusion_matrix(normalize=True).sum(axis=1), 1.0)
    assert np.trace(conf.to_numpy()) / conf.to_numpy().sum() == pytest.approx(
        np.mean(res.predictions == emo)
    )


def test_emotion_probe_at_chance_for_noise(table: pd.DataFrame) -> None:
    emo, actors = table["emotion"].to_numpy(), table["actor"].to_numpy()
    res = m.probe_uar(_noise(len(table)), emo, actors)
    assert abs(res.uar_mean - 0.125) < 0.05, res.fold_uar


def test_uar_is_balanced_not_plain_accuracy() -> None:
    """90 % of one class and uninformative features: the unweighted probe's accuracy is high, its UAR at chance."""
    rng = np.random.default_rng(7)
    groups = np.tile(np.arange(1, 25), 20)
    labels = np.where(rng.random(groups.size) < 0.9, "a", "b")
    res = m.probe_uar(rng.standard_normal((groups.size, 4)), labels, groups, class_weight=None)
    assert res.accuracy_mean > 0.8
    assert res.uar_mean < 0.6


def _imbalanced(seed: int = 11) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two overlapping classes (means 1 apart, unit noise), minority 'b' ~ 15 % of the clips."""
    rng = np.random.default_rng(seed)
    groups = np.tile(np.arange(1, 25), 40)
    labels = np.where(rng.random(groups.size) < 0.15, "b", "a")
    X = (labels == "b")[:, None] * 1.0 + rng.standard_normal((groups.size, 2))
    return X, labels, groups


def test_balanced_class_weight_raises_minority_recall_and_uar() -> None:
    X, labels, groups = _imbalanced()
    plain = m.probe_uar(X, labels, groups, class_weight=None)
    balanced = m.probe_uar(X, labels, groups)  # the default
    recall = {name: res.confusion_matrix(normalize=True).loc["b", "b"]
              for name, res in (("plain", plain), ("balanced", balanced))}
    assert recall["plain"] < 0.3 < 0.5 < recall["balanced"], recall
    assert balanced.uar_mean > plain.uar_mean + 0.05
    assert (balanced.fold_uar > plain.fold_uar).sum() >= 4
    assert plain.accuracy_mean > balanced.accuracy_mean  # the price: more majority clips called 'b'
    # the same as weighting the training rows by hand, fold by fold
    for k, fold in enumerate(m.ACTOR_FOLDS):
        test = np.isin(groups, fold)
        counts = pd.Series(labels[~test]).value_counts()
        weights = (len(labels[~test]) / (2 * counts))[labels[~test]].to_numpy()
        by_hand = m.make_probe(class_weight=None).fit(
            X[~test], labels[~test], logisticregression__sample_weight=weights)
        np.testing.assert_array_equal(balanced.predictions[test], by_hand.predict(X[test]))


def test_class_weight_is_threaded_through_every_probe(table: pd.DataFrame, monkeypatch) -> None:
    assert m.make_probe()[-1].class_weight == "balanced"
    assert m.make_probe(class_weight=None)[-1].class_weight is None
    seen: list[object] = []
    real = m.probes.make_probe

    def spy(*args, **kwargs):
        probe = real(*args, **kwargs)
        seen.append(probe[-1].class_weight)
        return probe

    monkeypatch.setattr(m.probes, "make_probe", spy)
    X = _class_features(table["emotion"].to_numpy(), scale=0.3)
    default = m.probe_representation(X, table)
    assert seen == ["balanced"] * 3
    seen.clear()
    unweighted = m.probe_representation(X, table, class_weight=None)
    assert seen == [None] * 3
    seen.clear()
    actors, reps = table["actor"].to_numpy(), table["repetition"].to_numpy()
    m.speaker_id_accuracy(X, actors, reps, class_weight=None)
    m.cross_validate_probe(X, table["emotion"], actors, m.ACTOR_FOLDS[:1], class_weight={1: 2.0})
    assert seen == [None, {1: 2.0}]
    # neutral has half the clips of the other emotions: the weighting changes the emotion probe
    emo = table["emotion"].to_numpy()
    np.testing.assert_array_equal(unweighted["emotion"].fold_uar,
                                  m.probe_uar(X, emo, actors, class_weight=None).fold_uar)
    assert not np.array_equal(default["emotion"].fold_uar, unweighted["emotion"].fold_uar)


def test_emotion_probe_cannot_use_speaker_features(table: pd.DataFrame) -> None:
    """Actor-specific features do not transfer to held-out actors."""
    emo, actors = table["emotion"].to_numpy(), table["actor"].to_numpy()
    res = m.probe_uar(_class_features(actors), emo, actors)
    assert res.uar_mean < 0.2


class _DropFirstColumn(TransformerMixin, BaseEstimator):
    """Records (in ``log``, shared by the clones) the actors (column 0) it is fitted on and
    transforms; passes the other columns on."""

    log: list[tuple[set[int], set[int]]] = []

    def fit(self, X: np.ndarray, y: object = None) -> "_DropFirstColumn":
        self.fitted_on_ = set(X[:, 0].astype(int).tolist())
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        self.log.append((self.fitted_on_, set(X[:, 0].astype(int).tolist())))
        return X[:, 1:]


def test_transform_step_is_fitted_on_training_actors_only(table: pd.DataFrame) -> None:
    emo, actors = table["emotion"].to_numpy(), table["actor"].to_numpy()
    X = np.column_stack([actors, _class_features(emo)])
    log = _DropFirstColumn.log
    log.clear()
    res = m.probe_uar(X, emo, actors, transform=_DropFirstColumn())
    held_out = [(fitted, seen) for fitted, seen in log if seen != fitted]  # the transforms of test rows
    assert len(held_out) >= 5
    for fitted, seen in log:
        fold = next(k for k, f in enumerate(m.ACTOR_FOLDS) if not set(f) & fitted)
        assert fitted == set(range(1, 25)) - set(m.ACTOR_FOLDS[fold])
        assert seen == fitted or seen == set(m.ACTOR_FOLDS[fold])
    assert {frozenset(seen) for _, seen in held_out} == {frozenset(f) for f in m.ACTOR_FOLDS}
    assert res.uar_mean > 0.95


def test_gender_probe(table: pd.DataFrame) -> None:
    gender, actors = table["gender"].to_numpy(), table["actor"].to_numpy()
    good = m.probe_uar(_class_features(gender, scale=2.0), gender, actors)
    bad = m.probe_uar(_noise(len(table)), gender, actors)
    assert good.accuracy_mean > 0.95 and good.uar_mean > 0.95
    assert good.chance == pytest.approx(0.5)
    assert abs(bad.uar_mean - 0.5) < 0.1


def test_speaker_id_probe(table: pd.DataFrame) -> None:
    actors, reps = table["actor"].to_numpy(), table["repetition"].to_numpy()
    emo = table["emotion"].to_numpy()
    good = m.speaker_id_accuracy(_class_features(actors), actors, reps)
    bad = m.speaker_id_accuracy(_class_features(emo), actors, reps)
    assert good.fold_accuracy.shape == (2,)
    assert good.held_out == ((1,), (2,))
    assert good.accuracy_mean > 0.95
    assert good.chance == pytest.approx(1 / 24)
    assert bad.accuracy_mean < 0.1
    keep = ~((actors == 3) & (reps == 2))  # actor 3 only in repetition 1
    with pytest.raises(ValueError, match="no training clips"):
        m.speaker_id_accuracy(_class_features(actors)[keep], actors[keep], reps[keep])


# --- baselines -----------------------------------------------------------------


def _logmels(emotion: np.ndarray, n_frames: int) -> np.ndarray:
    """(N, 80, n_frames) spectrogram-like arrays whose band energies depend on emotion."""
    rng = np.random.default_rng(4)
    profile = rng.standard_normal((8, 80, 1)) * 5.0
    return -40.0 + profile[emotion - 1] + rng.standard_normal((emotion.size, 80, n_frames))


@pytest.fixture(scope="module")
def logmels(table: pd.DataFrame) -> np.ndarray:
    """Full-size (N, 80, 128) clips."""
    return _logmels(table["emotion"].to_numpy(), 128)


def test_pooled_log_mel(logmels: np.ndarray) -> None:
    pooled = m.pooled_log_mel(logmels)
    assert pooled.shape == (logmels.shape[0], 160)
    np.testing.assert_allclose(pooled[:, :80], logmels.mean(axis=2))
    np.testing.assert_allclose(pooled[:, 80:], logmels.std(axis=2))
    with pytest.raises(ValueError):
        m.pooled_log_mel(logmels[0])


def test_pca_features_and_fold_transform(table: pd.DataFrame, logmels: np.ndarray) -> None:
    feats = m.pca_features(logmels, n_components=8)
    assert feats.shape == (len(table), 8)
    np.testing.assert_allclose(feats, m.pca_features(logmels, n_components=8))  # deterministic
    step = m.pca_transform(8).fit(logmels[:600])
    te = step.transform(logmels[600:])
    assert te.shape == (120, 8)
    by_hand = PCA(8, random_state=0).fit(logmels[:600].reshape(600, -1).astype(float))
    np.testing.assert_array_equal(te, by_hand.transform(logmels[600:].reshape(120, -1).astype(float)))
    emo, actors = table["emotion"].to_numpy(), table["actor"].to_numpy()
    short = _logmels(emo, 16)  # fewer frames keep the 5 per-fold PCAs fast
    res = m.probe_uar(short, emo, actors, transform=m.pca_transform(8))
    assert res.uar_mean > 0.9
    flat = _logmels(np.ones_like(emo), 16)  # same profile for every emotion
    assert m.probe_uar(flat, emo, actors, transform=m.pca_transform(8)).uar_mean < 0.25


def _voice(seconds: float = 1.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140.0 + 20.0 * np.sin(2 * np.pi * 3.0 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    sig = sum(np.sin(k * phase) / k for k in range(1, 15))
    env = np.clip(np.sin(np.pi * t / seconds) * 1.5, 0, 1)
    rng = np.random.default_rng(5)
    return (0.3 * env * sig + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def smile_ok() -> None:
    try:
        baselines._smile()
    except Exception as exc:  # pragma: no cover - depends on the platform
        pytest.skip(f"openSMILE could not load: {exc!r}")


@pytest.mark.usefixtures("smile_ok")
def test_egemaps_on_synthetic_signal() -> None:
    feats = m.egemaps_functionals([_voice()], progress=False)
    assert feats.shape == (1, 88)
    assert np.isfinite(feats.to_numpy()).all()
    assert "F0semitoneFrom27.5Hz_sma3nz_amean" in feats.columns
    # F0 mean ~140 Hz -> 12 * log2(140 / 27.5) ~ 28 semitones
    assert feats.loc[0, "F0semitoneFrom27.5Hz_sma3nz_amean"] == pytest.approx(28.2, abs=1.5)


@pytest.mark.usefixtures("smile_ok")
def test_egemaps_paths_and_parallel(tmp_path) -> None:
    import soundfile as sf

    sig16 = _voice(0.8)
    path = tmp_path / "clip.wav"
    sf.write(path, _voice(0.8, sr=48000), 48000)
    serial = m.egemaps_functionals([sig16, _voice(1.2)], progress=False, index=["a", "b"])
    parallel = m.egemaps_functionals([sig16, _voice(1.2)], progress=False, n_jobs=2, index=["a", "b"])
    pd.testing.assert_frame_equal(serial, parallel)
    from_path = m.egemaps_functionals([path], progress=False)
    assert from_path.shape == (1, 88) and np.isfinite(from_path.to_numpy()).all()
    f0 = "F0semitoneFrom27.5Hz_sma3nz_amean"
    assert from_path.loc[0, f0] == pytest.approx(serial.loc["a", f0], abs=0.5)


# --- results table ---------------------------------------------------------------


def test_results_table(table: pd.DataFrame) -> None:
    emo, actors = table["emotion"].to_numpy(), table["actor"].to_numpy()
    reps, gender = table["repetition"].to_numpy(), table["gender"].to_numpy()
    X = _class_features(emo)
    row = m.summary_row(
        "synthetic",
        8,
        emotion=m.probe_uar(X, emo, actors),
        speaker_id=m.speaker_id_accuracy(X, actors, reps),
        gender=m.probe_uar(X, gender, actors),
    )
    out = m.results_table([row, {"representation": "empty", "dims": 0}])
    assert tuple(out.columns) == m.RESULT_COLUMNS
    assert out.shape == (2, 6)
    assert "gender_acc" not in m.RESULT_COLUMNS and m.RESULT_COLUMNS[-1] == "gender_uar"
    assert out.loc[0, "emotion_uar_mean"] > 0.95
    assert out.loc[0, "speaker_id_acc"] < 0.2
    assert np.isnan(out.loc[1, "emotion_uar_mean"])
    with pytest.raises(ValueError, match="unknown"):
        m.results_table([{"representation": "x", "emotion_uar": 0.5}])
    with pytest.raises(ValueError, match="unknown"):
        m.results_table([{"representation": "x", "gender_acc": 0.5}])


def test_gender_is_scored_as_uar(table: pd.DataFrame) -> None:
    """gender_uar is the mean balanced accuracy over the actor folds, not the plain accuracy."""
    gender, actors = table["gender"].to_numpy(), table["actor"].to_numpy()
    emo = table["emotion"].to_numpy()
    keep = ~((gender == "female") & (table["repetition"].to_numpy() == 2))  # 1 female clip for 2 male clips
    X = _noise(len(table), seed=4)[keep]
    gender_res = m.probe_uar(X, gender[keep], actors[keep], class_weight=None)
    assert abs(gender_res.uar_mean - gender_res.accuracy_mean) > 0.02  # the two differ here
    row = m.summary_row("noise", 8, m.probe_uar(X, emo[keep], actors[keep]), gender=gender_res)
    assert row["gender_uar"] == gender_res.uar_mean
    assert m.results_table([row]).loc[0, "gender_uar"] == pytest.approx(np.mean(gender_res.fold_uar))


# --- per-fold rows in long form ------------------------------------------------------


def test_probe_rows_one_row_per_target_and_fold(table: pd.DataFrame) -> None:
    X = _class_features(table["emotion"].to_numpy(), scale=0.5)
    probes = m.probe_representation(X, table)
    rows = m.probe_rows(probes, "synthetic", seed=3)
    assert tuple(rows.columns) == m.PROBE_ROW_COLUMNS == (
        "representation", "seed", "target", "fold", "held_out", "uar", "accuracy", "n_test")
    assert rows.groupby("target", sort=False).size().to_dict() == {"emotion": 5, "gender": 5, "speaker_id": 2}
    assert (rows["representation"] == "synthetic").all() and (rows["seed"] == 3).all()
    for target, res in probes.items():
        part = rows[rows["target"] == target]
        assert part["fold"].tolist() == list(range(len(res.held_out)))
        assert part["uar"].mean() == pytest.approx(res.uar_mean)
        assert part["accuracy"].mean() == pytest.approx(res.accuracy_mean)
        assert part["n_test"].sum() == len(table)  # every clip is tested once
        assert part["held_out"].tolist() == [" ".join(map(str, fold)) for fold in res.held_out]
    actors = table["actor"].to_numpy()
    emotion = rows[rows["target"] == "emotion"]
    assert emotion["held_out"].iloc[0] == "2 5 14 15 16"
    assert emotion["n_test"].tolist() == [int(np.isin(actors, f).sum()) for f in m.ACTOR_FOLDS]
    assert rows.loc[rows["target"] == "speaker_id", "held_out"].tolist() == ["1", "2"]
    # seeds and representations stack into one long table; no seed is missing, not 0
    other = m.probe_rows({"emotion": probes["emotion"]}, "other")
    both = pd.concat([rows, other], ignore_index=True)
    assert len(both) == 17 and both["seed"].isna().sum() == 5 and str(both["seed"].dtype) == "Int64"


def test_probe_rows_refuses_what_it_cannot_lay_out(table: pd.DataFrame) -> None:
    res = m.probe_uar(_noise(len(table)), table["emotion"], table["actor"])
    np.testing.assert_array_equal(res.fold_n_test, [np.isin(table["actor"], f).sum() for f in m.ACTOR_FOLDS])
    with pytest.raises(ValueError, match="empty"):
        m.probe_rows({}, "x")
    with pytest.raises(TypeError, match="ProbeResult"):
        m.probe_rows({"emotion": res.to_dict()}, "x")
    by_hand = m.ProbeResult(res.fold_uar, res.fold_accuracy, res.confusion, res.predictions, res.held_out)
    with pytest.raises(ValueError, match="fold_n_test"):
        m.probe_rows({"emotion": by_hand}, "x")


# --- section 5.3 helpers: encoders, per-fold encoders, cached eGeMAPS, t-SNE ------------


class _LinearEncoder:
    """Stand-in for a trained VAE: mu = mean over time of the first bands, logvar = -2."""

    def __init__(self, dims: int = 3) -> None:
        import torch

        self.dims, self.training, self._p = dims, True, torch.nn.Parameter(torch.zeros(1))

    def parameters(self):
        yield self._p

    def eval(self):
        self.training = False
        return self

    def train(self, mode: bool = True):
        self.training = mode
        return self

    def encode(self, x):
        mu = x[:, : self.dims, :].mean(dim=2)
        return mu, -2.0 * (mu * 0 + 1)


def _actor_logmels(table: pd.DataFrame, n_frames: int = 4) -> np.ndarray:
    """Band 0 = emotion, band 1 = actor number, band 2 = noise (tiny log-mels)."""
    rng = np.random.default_rng(3)
    n = len(table)
    X = np.zeros((n, 4, n_frames), dtype=np.float32)
    X[:, 0] = table["emotion"].to_numpy()[:, None] + 0.05 * rng.standard_normal((n, n_frames))
    X[:, 1] = table["actor"].to_numpy()[:, None]
    X[:, 2] = rng.standard_normal((n, n_frames))
    return X


def test_encode_posterior_returns_mu_and_sigma() -> None:
    enc = _LinearEncoder(2)
    X = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
    mu, sigma = encode_posterior(enc, X, batch_size=1)
    np.testing.assert_allclose(mu, X[:, :2].mean(axis=2))
    np.testing.assert_allclose(sigma, np.exp(-1.0), rtol=1e-6)
    assert mu.dtype == np.float32 and enc.training  # training flag restored
    with pytest.raises(ValueError):
        encode_posterior(enc, X[:0])


def test_encoder_fold_transform_trains_once_per_fold_on_training_actors(table: pd.DataFrame) -> None:
    X = _actor_logmels(table)
    seen: list[tuple[int, set[int]]] = []

    def train_fn(X_train: np.ndarray, fold: int) -> _LinearEncoder:
        seen.append((fold, set(np.unique(X_train[:, 1, 0]).astype(int).tolist())))
        return _LinearEncoder(1)  # mu = the emotion band only

    transform = m.EncoderFoldTransform(train_fn)
    res = m.probe_representation(X, table, transform=transform, speaker_id=False)
    assert set(res) == {"emotion", "gender"}
    assert transform.n_trained == 5 and sorted(transform.models) == [0, 1, 2, 3, 4]  # gender reused the cache
    assert [fold for fold, _ in seen] == [0, 1, 2, 3, 4]  # train_fn gets the held-out fold's index
    for fold, actors in seen:
        assert actors == set(range(1, 25)) - set(m.ACTOR_FOLDS[fold])  # held-out actors never reach train_fn
    # a fitted step encodes with its own fold's model; fitting without test_fold is fold 0
    step = m.EncoderFoldTransform(train_fn).fit(X[:10])
    assert seen[-1][0] == 0 and step.transform(X[:3]).shape == (3, 1) and step.n_trained == 1
    assert res["emotion"].uar_mean > 0.9
    assert res["gender"].uar_mean < 0.7  # the emotion band says nothing about gender


def test_probe_representation_runs_three_probes(table: pd.DataFrame) -> None:
    X = _class_features(table["actor"].to_numpy())
    res = m.probe_representation(X, table)
    assert set(res) == {"emotion", "gender", "speaker_id"}
    assert res["speaker_id"].accuracy_mean > 0.9 and res["emotion"].uar_mean < 0.3
    assert res["speaker_id"].held_out == m.REPETITION_FOLDS and res["emotion"].held_out == m.ACTOR_FOLDS


def test_factor_separation(codes: np.ndarray, factors: pd.DataFrame) -> None:
    out = m.factor_separation(codes, factors, "emotion", threshold=0.1, n_permutations=50)
    assert out["n_informative"] == 1 and out["dims"] == [0] and out["best_dim"] == 0
    assert out["n_clips"] == len(factors) and out["max_nmi"] > 0.5 and out["mig"] > 0.3
    assert m.factor_separation(codes[:, 2:], factors, "emotion", n_permutations=50)["n_informative"] == 0


def test_egemaps_cached_computes_once_and_rebuilds_on_change(tmp_path, monkeypatch) -> None:
    calls = []

    def fake(sources, sampling_rate=16000, *, audio="raw", config=None, n_jobs=1, progress=True, index=None):
        calls.append(len(sources))
        return pd.DataFrame(np.arange(len(sources) * 88, dtype=float).reshape(len(sources), 88) / 7,
                            index=pd.Index(index), columns=[f"f{i}" for i in range(88)])

    monkeypatch.setattr(baselines, "egemaps_functionals", fake)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"clip{i}.wav")
        paths[-1].write_bytes(b"x" * (10 + i))
    first = m.egemaps_cached(paths, tmp_path / "cache")
    again = m.egemaps_cached(paths, tmp_path / "cache")
    assert calls == [2] and list(first.index) == ["clip0", "clip1"]
    pd.testing.assert_frame_equal(first, again, check_names=False)
    paths[1].write_bytes(b"y" * 99)  # a changed file recomputes
    m.egemaps_cached(paths, tmp_path / "cache")
    assert calls == [2, 2]
    monkeypatch.setenv("EMOVAE_CACHE_DIR", str(tmp_path / "env"))
    m.egemaps_cached(paths[:1], names=["a"])
    assert calls == [2, 2, 1] and len(list((tmp_path / "env").glob("egemaps-*.csv"))) == 1
    with pytest.raises(ValueError):
        m.egemaps_cached(paths, tmp_path / "cache", names=["only one"])


def test_tsne_embedding_is_deterministic_and_keeps_clusters() -> None:
    rng = np.random.default_rng(0)
    codes = np.concatenate([rng.normal(0, 0.1, (30, 5)), rng.normal(5, 0.1, (30, 5))])
    a, b = m.tsne_embedding(codes, random_state=1), m.tsne_embedding(codes, random_state=1)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (60, 2)
    gap = np.linalg.norm(a[:30].mean(0) - a[30:].mean(0))
    assert gap > 3 * max(a[:30].std(0).max(), a[30:].std(0).max())
    assert m.tsne_embedding(codes[:6], perplexity=30, standardise=True, max_iter=250).shape == (6, 2)


# --- eGeMAPS of the audio the VAE sees ------------------------------------------------


def _tone(n: int, sr: int = 16000) -> np.ndarray:
    """A 7.9 kHz tone: the VAD finds no speech in it (n a multiple of its 480-sample frames), so
    preprocessing keeps all n samples."""
    return (0.5 * np.sin(2 * np.pi * 7900 * np.arange(n) / sr)).astype(np.float32)


@pytest.mark.parametrize("bursts", [(1.5, 1.5), (0.5,)])
def test_preprocess_audio_is_what_the_log_mel_is_made_of(bursts) -> None:
    from conftest import utterance

    from emovae_utils import dsp

    y = utterance(bursts=bursts)
    config = dsp.PreprocessConfig(top_db=None)  # top_db clips relative to the loudest frame of each input
    audio, info = dsp.preprocess_audio(y, 48000, config)
    S, info_signal = dsp.preprocess_signal(y, 48000, config)
    assert info == info_signal and audio.dtype == np.float32 and audio.max() == 1.0
    assert len(audio) == info.n_voiced_samples < info.n_samples == len(y) // 3
    assert info.n_voiced_frames == 1 + len(audio) // 256 == dsp.log_mel(audio, config).shape[1]
    np.testing.assert_array_equal(S, dsp.fix_frames(dsp.log_mel(audio, config), 128))

    window, info_window = dsp.preprocess_audio(y, 48000, config, window=True)
    assert window.shape == (128 * 256,) and window.dtype == np.float32 and info_window == info
    T = info.n_voiced_frames
    if T > 128:  # centre crop: the frames fix_frames keeps, from the same samples
        start = (T - 128) // 2 * 256
        np.testing.assert_array_equal(window, audio[start:start + 128 * 256])
        np.testing.assert_array_equal(dsp.log_mel(window, config)[:, 2:126], S[:, 2:126])
    else:  # zero-padded on the right, where fix_frames repeats the last frame
        np.testing.assert_array_equal(window[:len(audio)], audio)
        assert not window[len(audio):].any()
        np.testing.assert_array_equal(dsp.log_mel(window, config)[:, :T - 2], S[:, :T - 2])


def test_preprocess_audio_window_lengths_at_the_edges() -> None:
    from emovae_utils import dsp

    for n, start in ((31680, 0), (32640, 0), (33120, 256), (40320, 3840)):  # 124, 128, 130, 158 frames
        y = _tone(n)
        audio, info = dsp.preprocess_audio(y, 16000)
        window, _ = dsp.preprocess_audio(y, 16000, window=True)
        assert not info.speech_found and len(audio) == n and info.n_voiced_frames == 1 + n // 256
        assert len(window) == 32768
        kept = min(n - start, 32768)  # 128 frames of 32640 samples run 128 samples past the end: zeros
        np.testing.assert_array_equal(window[:kept], audio[start:start + kept])
        assert not window[kept:].any()
    with pytest.raises(dsp.AudioError, match="mono"):
        dsp.preprocess_audio(np.zeros((2, 100)), 16000)
    with pytest.raises(dsp.AudioError, match="silent"):
        dsp.preprocess_audio(np.zeros(100), 16000)


@pytest.mark.usefixtures("smile_ok")
def test_egemaps_of_preprocessed_audio_is_egemaps_of_preprocess_audio() -> None:
    from emovae_utils import dsp

    sig = np.concatenate([np.zeros(8000, np.float32), _voice(2.5), np.zeros(8000, np.float32)])
    for audio in ("preprocessed", "window"):
        direct = m.egemaps_functionals([sig], audio=audio, progress=False)
        by_hand = m.egemaps_functionals([dsp.preprocess_audio(sig, 16000, window=audio == "window")[0]],
                                        progress=False)
        pd.testing.assert_frame_equal(direct, by_hand)
    with pytest.raises(ValueError, match="audio='vae'"):
        m.egemaps_functionals([sig], audio="vae")
    with pytest.raises(ValueError, match="sampling_rate=16000"):
        m.egemaps_functionals([sig], 22050, audio="window")
    assert set(m.EGEMAPS_AUDIO) == {"raw", "preprocessed", "window"}


@pytest.mark.usefixtures("smile_ok")
def test_egemaps_cached_variants_differ_and_never_share_a_cache(ravdess_dir, tmp_path, monkeypatch) -> None:
    from emovae_utils import dsp

    paths = sorted((ravdess_dir / "Actor_01").glob("03-01-0[15]-01-01-01-01.*"))
    assert len(paths) == 2, paths
    calls: list[str] = []
    real = baselines.egemaps_functionals

    def counting(*args, **kwargs):
        calls.append(kwargs["audio"])
        return real(*args, **kwargs)

    monkeypatch.setattr(baselines, "egemaps_functionals", counting)
    cache = tmp_path / "cache"
    tables = {audio: m.egemaps_cached(paths, cache, audio=audio, progress=False) for audio in m.EGEMAPS_AUDIO}
    assert calls == ["raw", "preprocessed", "window"] and len(list(cache.glob("egemaps-*.csv"))) == 3
    for audio, table in tables.items():
        assert table.shape == (2, 88) and np.isfinite(table.to_numpy()).all()
        pd.testing.assert_frame_equal(m.egemaps_cached(paths, cache, audio=audio, progress=False), table,
                                      check_names=False)
    assert len(calls) == 3  # all three read back from their own files
    for a, b in itertools.combinations(tables.values(), 2):
        assert not np.allclose(a.to_numpy(), b.to_numpy())
    # the VAD drops the silence around the sentence: less unvoiced time in the preprocessed audio
    pause = "MeanUnvoicedSegmentLength"
    assert (tables["preprocessed"][pause] < tables["raw"][pause]).all()
    # the preprocessing recipe is part of the key of the preprocessed variants only
    other = dsp.PreprocessConfig(vad_mode=1)
    m.egemaps_cached(paths, cache, audio="raw", config=other, progress=False)
    assert len(calls) == 3
    m.egemaps_cached(paths, cache, audio="window", config=other, progress=False)
    assert calls[3:] == ["window"] and len(list(cache.glob("egemaps-*.csv"))) == 4


def test_actor_uar_and_probe_summary_resample_seeds_and_actors():
    from types import SimpleNamespace as NS

    actors = np.repeat([1, 2, 3], 4)
    labels = np.tile(["a", "a", "b", "b"], 3)
    perfect = NS(predictions=labels.astype(object))
    half = NS(predictions=np.array(["a"] * 12, dtype=object))
    assert m.actor_uar(perfect, actors, labels).tolist() == [1.0, 1.0, 1.0]
    assert m.actor_uar(half, actors, labels).tolist() == [0.5, 0.5, 0.5]
    per_actor = pd.concat([
        m.actor_uar(r, actors, labels).reset_index().assign(representation=name, seed=s)
        for name, s, r in (("vae", 0, perfect), ("vae", 1, half), ("base", None, half))])
    long = pd.DataFrame({"representation": ["vae", "vae", "base"], "target": ["speaker_id", "gender", "gender"],
                         "uar": [0.1, 0.6, 0.5], "accuracy": [0.2, 0.7, 0.5]})
    table = m.probe_summary(per_actor, long).set_index("representation")
    assert table.loc["vae", "n_seeds"] == 2 and table.loc["base", "n_seeds"] == 1
    assert table.loc["vae", "emotion_uar_mean"] == pytest.approx(0.75)
    assert table.loc["vae", "emotion_uar_ci_low"] <= 0.75 <= table.loc["vae", "emotion_uar_ci_high"]
    assert table.loc["vae", "emotion_uar_ci_high"] - table.loc["vae", "emotion_uar_ci_low"] > 0.2  # seeds differ
    assert table.loc["vae", "speaker_id_acc"] == pytest.approx(0.2) and table.loc["vae", "gender_uar"] == 0.6
