"""Every rule checked on a case whose answer is known, power before absence, and the 24-actor claim's two senses.

A rule decides a claim only after it gives the known answer on its controls
(``figures/verdict_controls.csv``, columns :data:`CONTROL_COLUMNS`):

* :func:`control_row`, :func:`guard_verdict`, :func:`controls_markdown`: one
  control, a verdict withheld (``"inconclusive"``) when its rule failed a
  control, the controls as a Markdown table;
* :func:`convergence_controls`: the flattening rule on runs that converged by
  the report's account (flat) and on the same runs stopped early (not flat);
* :func:`planted_latent`, :func:`separation_controls`: claim (a)'s count on a
  latent with planted emotion dimensions (found) and on shuffled labels (not found);
* :func:`separation_power`: how often the same test finds a planted dimension
  of a given effect (eta squared), the power an absence needs;
  :func:`eta_squared`, :func:`top_eta_squared`: the effect size beside the count;
* :func:`difference_control`: a comparison of two copies of the same encoder (difference 0);
* :func:`all_actors_loss_row`, :func:`all_actors_emotion_row`: "training on all
  24 actors does not converge" in the loss sense and in the emotion sense.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..convergence import flat_epoch, truncated
from .intervals import difference_interval, mean_interval, share_interval
from .latents import emotion_dimensions
from .verdicts import interval_verdict, verdict_row

__all__ = [
    "CONTROL_COLUMNS", "REPORT_EFFECTS", "control_row", "claim_controls_pass", "guard_verdict", "controls_markdown",
    "run_flat_epoch",
    "convergence_controls", "planted_latent", "separation_controls", "separation_power", "eta_squared",
    "top_eta_squared", "difference_control", "all_actors_loss_row", "all_actors_loss_table",
    "all_actors_emotion_row",
]

#: The effects (eta squared of a dimension) the report's clear emotion clusters imply: claim (a)'s power is
#: simulated at these, and an absence counts only where the smaller is found in at least 80 % of simulations.
REPORT_EFFECTS: tuple[float, ...] = (0.5, 0.7)
#: Columns of ``verdict_controls.csv``, in order.
CONTROL_COLUMNS: tuple[str, ...] = ("claim", "control", "expected", "verdict")


def control_row(claim: str, control: str, expected: str, verdict: str) -> dict[str, str]:
    """One row of ``verdict_controls.csv``: the rule of ``claim`` on a known case; passes when ``verdict == expected``.

    Examples
    --------
    >>> control_row("x", "flat loss", "flat", "flat")["verdict"]
    'flat'
    """
    if not (claim and control and expected and verdict):
        raise ValueError("a control row needs the claim, the control, the expected answer and the rule's answer")
    return {"claim": str(claim), "control": str(control), "expected": str(expected), "verdict": str(verdict)}


def claim_controls_pass(claim: str, controls: Iterable[Mapping[str, Any]]) -> bool:
    """Whether the rule of ``claim`` gave the expected answer on every one of its controls.

    Examples
    --------
    >>> claim_controls_pass("c", [control_row("c", "k", "flat", "not flat")])
    False
    """
    return all(c["verdict"] == c["expected"] for c in controls if c["claim"] == claim)


def guard_verdict(row: Mapping[str, Any], controls: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The verdict row as it stands when its rule passed every control of its claim; else withheld.

    A rule that fails a control cannot decide: the verdict becomes
    ``"inconclusive"`` and the rule text says which control failed (the rule
    is replaced by "no decision" until a rule that passes is found).

    Examples
    --------
    >>> row = verdict_row("c", "holds", "r", 1.0, 0.5, 1.5, 3)
    >>> guard_verdict(row, [control_row("c", "k", "flat", "flat")])["verdict"]
    'holds'
    >>> out = guard_verdict(row, [control_row("c", "stopped early", "not flat", "flat")])
    >>> out["verdict"], out["rule"][:40]
    ('inconclusive', 'withheld: the rule failed its control (s')
    """
    controls = list(controls)
    failed = [c["control"] for c in controls if c["claim"] == row["claim"] and c["verdict"] != c["expected"]]
    if not failed:
        return dict(row)
    note = f"withheld: the rule failed its control ({'; '.join(failed)}); it said {row['verdict']!r} by: "
    return {**row, "verdict": "inconclusive", "rule": note + str(row["rule"])}


def controls_markdown(controls: Iterable[Mapping[str, Any]]) -> str:
    """The controls as a Markdown table with a pass column.

    Examples
    --------
    >>> print(controls_markdown([control_row("c", "k", "flat", "flat")]))
    | claim | control | expected | rule's answer | passes |
    |---|---|---|---|---|
    | c | k | flat | flat | yes |
    """
    lines = ["| claim | control | expected | rule's answer | passes |", "|---|---|---|---|---|"]
    lines += [f"| {c['claim']} | {c['control']} | {c['expected']} | {c['verdict']} | "
              f"{'yes' if c['verdict'] == c['expected'] else '**no**'} |" for c in controls]
    return "\n".join(lines)


def run_flat_epoch(history: pd.DataFrame, losses: Sequence[str] = ("reconstruction", "kl"),
                   per_epochs: int = 1000, tolerance: float = 0.01) -> dict[str, float]:
    """Flat epoch of each loss of one run by :func:`~emovae_utils.convergence.flat_epoch`, and ``both``.

    Examples
    --------
    >>> h = pd.DataFrame({"reconstruction": np.r_[np.linspace(50, 10, 50), np.full(150, 10.0)], "kl": np.ones(200)})
    >>> run_flat_epoch(h, per_epochs=20)
    {'reconstruction': 50.0, 'kl': 1.0, 'both': 50.0}
    """
    out = {}
    for loss in losses:
        epoch = flat_epoch(history[loss], per_epochs=per_epochs, tolerance=tolerance)
        out[loss] = np.nan if epoch is None else float(epoch)
    out["both"] = np.nan if any(np.isnan(v) for v in out.values()) else max(out.values())
    return out


def _flat_answer(flat: np.ndarray) -> str:
    done = int(np.isfinite(flat).sum())
    return "flat" if done == flat.size else "not flat" if done == 0 else f"mixed ({done} of {flat.size} flat)"


def convergence_controls(
    claim: str, name: str, runs: Mapping[int, pd.DataFrame], *, per_epochs: int = 1000, tolerance: float = 0.01,
    share: float = 0.1, losses: Sequence[str] = ("reconstruction", "kl"),
) -> list[dict[str, str]]:
    """The flattening rule on runs that converged by the report's account, and on the same runs stopped early.

    Two controls: every seed of ``runs`` flat (expected ``"flat"``), and every
    seed's first ``share`` of its history not flat (expected ``"not flat"``).

    Examples
    --------
    >>> t = np.arange(1, 3001)
    >>> h = pd.DataFrame({"reconstruction": 20 + 900 * np.exp(-t / 150), "kl": 5 - 4 * np.exp(-t / 100)})
    >>> [c["verdict"] for c in convergence_controls("c", "toy", {0: h, 1: h}, per_epochs=100)]
    ['flat', 'not flat']
    """
    def answer(cut: float) -> str:
        epochs = [run_flat_epoch(truncated(h, cut), losses, per_epochs, tolerance)["both"] for h in runs.values()]
        return _flat_answer(np.asarray(epochs, dtype=float))

    return [control_row(claim, f"{name}, {len(runs)} seeds (converged by the report)", "flat", answer(1.0)),
            control_row(claim, f"{name}, first {share:.0%} of each run (stopped early)", "not flat", answer(share))]


def planted_latent(labels: Sequence | np.ndarray, eta2: float, n_dims: int = 8, n_planted: int = 1,
                   random_state: int = 0) -> np.ndarray:
    """A latent whose first ``n_planted`` dimensions follow emotion with effect ``eta2``; the rest are noise.

    Each planted dimension is ``sqrt(eta2) * m[label] + sqrt(1 - eta2) * noise``
    with standardised class means ``m`` (mean 0, variance 1 over the clips), so
    emotion explains about ``eta2`` of its variance.

    Examples
    --------
    >>> labels = np.repeat(np.arange(8), 90)
    >>> z = planted_latent(labels, 0.5, n_dims=3)
    >>> z.shape, np.round(eta_squared(z, labels), 1).tolist()
    ((720, 3), [0.5, 0.0, 0.0])
    """
    if not 0.0 <= eta2 < 1.0:
        raise ValueError(f"eta2 must be in [0, 1), got {eta2}")
    rng = np.random.default_rng(random_state)
    codes, classes = np.unique(np.asarray(labels), return_inverse=True)
    z = rng.standard_normal((classes.size, n_dims))
    for d in range(n_planted):
        m = rng.standard_normal(codes.size)[classes]
        m = (m - m.mean()) / (m.std() or 1.0)
        z[:, d] = np.sqrt(eta2) * m + np.sqrt(1.0 - eta2) * z[:, d]
    return z


def eta_squared(codes: np.ndarray, labels: Sequence | np.ndarray, adjusted: bool = False) -> np.ndarray:
    """Share of each dimension's variance explained by the labels (between-class over total sum of squares).

    ``adjusted=True`` gives epsilon squared, ``(SS_between - (k - 1) MS_within) / SS_total``: eta squared less
    what k classes explain by chance in N clips (about ``(k - 1) / (N - 1)``, 0.24 for 8 emotions in 30 clips).

    Examples
    --------
    >>> eta_squared(np.array([[0.0], [0.0], [1.0], [1.0]]), [0, 0, 1, 1]).tolist()
    [1.0]
    >>> noise = np.random.default_rng(0).standard_normal((30, 1))
    >>> labels = np.arange(30) % 8
    >>> bool(eta_squared(noise, labels)[0] > 0.1), bool(abs(eta_squared(noise, labels, adjusted=True)[0]) < 0.15)
    (True, True)
    """
    z = np.asarray(codes, dtype=float)
    _, classes = np.unique(np.asarray(labels), return_inverse=True)
    k, n = int(classes.max()) + 1, z.shape[0]
    centred = z - z.mean(axis=0)
    means = np.stack([centred[classes == c].mean(axis=0) for c in range(k)])
    between = (np.bincount(classes)[:, None] * means ** 2).sum(axis=0)
    total = (centred ** 2).sum(axis=0)
    if adjusted and n > k:
        between = between - (k - 1) * (total - between) / (n - k)
    return np.divide(between, total, out=np.zeros_like(total), where=total > 0)


def top_eta_squared(codes_per_seed: Mapping[Any, np.ndarray], labels: Sequence | np.ndarray, k: int = 3,
                    ci: float = 0.95) -> pd.DataFrame:
    """The effect size beside claim (a)'s count: the r-th largest epsilon squared (chance-adjusted eta squared)
    per seed, with a t-interval over seeds.

    Returns
    -------
    pandas.DataFrame
        Index ``rank`` (1: the largest); ``eps2_mean``, ``ci_low``, ``ci_high``, ``n_seeds``.

    Examples
    --------
    >>> labels = np.repeat(np.arange(8), 90)
    >>> runs = {s: planted_latent(labels, 0.6, random_state=s) for s in range(3)}
    >>> top_eta_squared(runs, labels, k=2)["eps2_mean"].round(1).tolist()   # planted, then the largest noise
    [0.6, 0.0]
    """
    eta = np.stack([np.sort(eta_squared(z, labels, adjusted=True))[::-1][:k] for z in codes_per_seed.values()])
    rows = []
    for r in range(eta.shape[1]):
        iv = mean_interval(eta[:, r], ci)
        rows.append({"rank": r + 1, "eps2_mean": iv.estimate, "ci_low": iv.low, "ci_high": iv.high, "n_seeds": iv.n})
    return pd.DataFrame(rows).set_index("rank")


def _count(z: np.ndarray, labels: np.ndarray, n_bins: int, n_permutations: int, alpha: float,
           random_state: int) -> pd.Series:
    sigma = np.full(z.shape, 0.1)  # every dimension active: the test alone decides
    return emotion_dimensions(z, sigma, labels, n_bins=n_bins, n_permutations=n_permutations, alpha=alpha,
                              random_state=random_state)["separates"]


def separation_power(
    labels: Sequence | np.ndarray, eta2: float, *, n_dims: int = 8, n_planted: int = 3, n_bins: int = 20,
    n_permutations: int = 1000, alpha: float = 0.05, n_sim: int = 100, random_state: int = 0,
) -> dict[str, float]:
    """How often claim (a)'s test finds a planted dimension of effect ``eta2``: its power, with the same clips and test.

    ``n_planted`` dimensions (the claimed count) of ``n_dims`` carry the effect
    (:func:`planted_latent`); each simulation runs the same permutation test,
    bins and Holm correction (:func:`~emovae_utils.metrics.latents.emotion_dimensions`).

    Returns
    -------
    dict
        ``eta2``, ``power`` (share of planted dimensions found), ``ci_low``,
        ``ci_high`` (exact interval), ``n_sim``, ``false`` (mean count of noise
        dimensions found per simulation).

    Examples
    --------
    >>> labels = np.repeat(np.arange(8), 30)
    >>> out = separation_power(labels, 0.5, n_bins=10, n_permutations=200, n_sim=3)
    >>> out["power"], out["n_sim"]
    (1.0, 3)
    """
    labels = np.asarray(labels)
    found = noise = 0
    for i in range(int(n_sim)):
        z = planted_latent(labels, eta2, n_dims, n_planted, random_state + i)
        sep = _count(z, labels, n_bins, n_permutations, alpha, random_state + i).to_numpy()
        found, noise = found + int(sep[:n_planted].sum()), noise + int(sep[n_planted:].sum())
    iv = share_interval(found, n_planted * int(n_sim))
    return {"eta2": float(eta2), "power": iv.estimate, "ci_low": iv.low, "ci_high": iv.high, "n_sim": int(n_sim),
            "false": noise / max(1, int(n_sim))}


def separation_controls(
    claim: str, mu: np.ndarray, labels: Sequence | np.ndarray, *, n_bins: int = 20, n_permutations: int = 1000,
    alpha: float = 0.05, eta2: float = 0.9, random_state: int = 0,
) -> list[dict[str, str]]:
    """Claim (a)'s count on a latent with a planted emotion dimension (found) and on shuffled labels (not found).

    Examples
    --------
    >>> labels = np.repeat(np.arange(8), 30)
    >>> mu = np.random.default_rng(0).standard_normal((240, 4))
    >>> [c["verdict"] for c in separation_controls("a", mu, labels, n_bins=10, n_permutations=200)]
    ['found', 'not found']
    """
    labels = np.asarray(labels)
    planted = planted_latent(labels, eta2, mu.shape[1], 1, random_state)
    found = _count(planted, labels, n_bins, n_permutations, alpha, random_state)
    shuffled = np.random.default_rng(random_state).permutation(labels)
    null = int(_count(np.asarray(mu, dtype=float), shuffled, n_bins, n_permutations, alpha, random_state).sum())
    return [control_row(claim, f"one planted dimension (eta² {eta2:g}), {len(labels)} clips", "found",
                        "found" if bool(found.iloc[0]) else "not found"),
            control_row(claim, "the encoder's mu with the emotion labels shuffled", "not found",
                        "not found" if null == 0 else f"found ({null} dimensions)")]


def difference_control(claim: str, name: str, values: np.ndarray | pd.DataFrame, ci: float = 0.95) -> dict[str, str]:
    """A comparison rule on two copies of the same encoder: difference 0, with 0 inside its interval.

    Examples
    --------
    >>> difference_control("b", "12-actor encoder", [0.25, 0.27, 0.26])["verdict"]
    'difference 0, interval contains 0'
    """
    iv = difference_interval(values, values, paired=False, ci=ci)
    answer = (f"difference {iv.estimate:.3g}, interval contains 0" if iv.low <= 0.0 <= iv.high
              else f"difference {iv.estimate:.3g}, interval [{iv.low:.3g}, {iv.high:.3g}]")
    return control_row(claim, f"two copies of the {name}", "difference 0, interval contains 0", answer)


def all_actors_loss_row(
    final: Sequence[float] | np.ndarray, trivial: Mapping[str, float], *, where: str = "all 24 actors",
    ci: float = 0.95,
) -> dict[str, Any]:
    """Verdict row of "training on all 24 actors does not converge", loss sense: no better than a trivial predictor.

    The statistic is the mean final reconstruction over seeds minus the best
    trivial predictor's (the smaller of e.g. the mean spectrogram and the
    per-actor mean), with a t-interval over seeds. **Holds** when the interval
    lies at or above 0 (it reconstructs no better than predicting the mean),
    **does not hold** when it lies below 0, else inconclusive.

    Examples
    --------
    >>> row = all_actors_loss_row([58.8, 55.8, 56.6], {"mean spectrogram": 193.0, "per-actor mean": 165.0})
    >>> row["verdict"], round(row["statistic"], 1)
    ('does not hold', -107.9)
    """
    best_name, best = min(trivial.items(), key=lambda kv: kv[1])
    iv = mean_interval(np.asarray(final, dtype=float) - float(best), ci)
    verdict = interval_verdict(iv.low, iv.high, 0.0, "less")
    verdict = {"holds": "does not hold", "does not hold": "holds"}.get(verdict, verdict)
    rule = (f"loss sense: mean final reconstruction over seeds minus the best trivial predictor's ({best_name}, "
            f"{best:.1f} dB²), {ci:.0%} t-interval over seeds; holds when it lies at or above 0 (no better than the "
            "trivial predictor), does not hold when it lies below 0, else inconclusive")
    return verdict_row(f"training on {where} does not converge (loss sense)", verdict, rule, iv.estimate, iv.low,
                       iv.high, iv.n)


def all_actors_loss_table(
    final: Sequence[float] | np.ndarray, trivial: Mapping[str, float], reference: Sequence[float] | np.ndarray,
    reference_name: str, ci: float = 0.95,
) -> pd.DataFrame:
    """The loss sense's evidence: final reconstruction minus each trivial predictor's and minus a reference model's.

    Against a trivial predictor (a constant): t-interval over seeds. Against
    the reference (e.g. the 12-actor model at equal gradient steps, trained
    apart): Welch interval of the difference of seed means.

    Examples
    --------
    >>> t = all_actors_loss_table([58.8, 55.8, 56.6], {"mean spectrogram": 193.0}, [44.8, 41.0, 40.6], "12 actors")
    >>> t.index.tolist(), t["difference"].round(1).tolist()
    (['mean spectrogram', '12 actors'], [-135.9, 14.9])
    """
    final = np.asarray(final, dtype=float)
    rows = {name: mean_interval(final - float(v), ci) for name, v in trivial.items()}
    rows[reference_name] = difference_interval(final, np.asarray(reference, dtype=float), paired=False, ci=ci)
    return pd.DataFrame({name: {"difference": iv.estimate, "ci_low": iv.low, "ci_high": iv.high, "n_seeds": iv.n}
                         for name, iv in rows.items()}).T.rename_axis("final reconstruction minus")


def all_actors_emotion_row(
    uar: np.ndarray | pd.DataFrame, reference: np.ndarray | pd.DataFrame, *, chance: float = 1 / 8,
    where: str = "all 24 actors", reference_name: str = "12-actor encoder", ci: float = 0.95,
) -> dict[str, Any]:
    """Verdict row of "training on all 24 actors could not learn emotion", emotion sense, seeds as the unit.

    ``uar`` and ``reference`` are the emotion probe's UAR per seed (and fold)
    of the all-actors encoder and of the ``reference_name`` encoder, two
    models trained apart: the statistic is the Welch difference of their seed
    means (``uar - reference``). **Holds** when the all-actors encoder's own
    interval reaches chance (a probe reads no emotion); **does not hold** when
    its interval lies above chance and the difference's interval reaches 0 or
    above (as much emotion as the reference encoder); else inconclusive.

    Examples
    --------
    >>> all_actors_emotion_row([0.26, 0.27, 0.26], [0.26, 0.25, 0.27])["verdict"]
    'does not hold'
    >>> all_actors_emotion_row([0.12, 0.13, 0.125], [0.26, 0.25, 0.27])["verdict"]
    'holds'
    """
    own, diff = mean_interval(uar, ci), difference_interval(uar, reference, paired=False, ci=ci)
    if np.isnan(own.low) or np.isnan(diff.low):
        verdict = "inconclusive"
    elif own.low <= chance:
        verdict = "holds"
    else:
        verdict = "does not hold" if diff.high >= 0.0 else "inconclusive"
    rule = (f"emotion sense: emotion UAR of its encoder minus the {reference_name}'s, {ci:.0%} Welch t-interval of the "
            f"difference of seed means (models trained apart: unpaired); holds when its own interval reaches chance "
            f"({chance:.3f}), does not hold when its interval lies above chance and the difference's reaches 0, "
            "else inconclusive")
    return verdict_row(f"training on {where} could not learn emotion (emotion sense)", verdict, rule,
                       diff.estimate, diff.low, diff.high, diff.n)
