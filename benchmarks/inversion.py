"""Mel inversion benchmark: milliseconds, PESQ-wb and STOI of each method on the same real clips.

For each clip (spread over actors and emotions) the features are computed by the study's recipe, and
the clean reference is the voiced, peak-normalised signal those 128 frames describe
(:func:`emovae_utils.inversion.clean_pair`). Each method inverts the features; its output is scored
against the clean signal with PESQ (wide band, package ``pesq``) and STOI (package ``pystoi``), and timed
(median of ``--repeats`` calls per clip, after one untimed warm-up call). Threads are what a notebook gets:
nothing is limited here; the inversions run on one BLAS thread by their own policy
(:func:`emovae_utils.resources.one_blas_thread`) and their FFTs on one worker.

``--busy`` times every method again while another process keeps one core busy (a spin loop) and prints
both times: BLAS's default of a thread per core once made the fast method 6x slower on a busy machine.

Methods
- ``reference``: ``inversion.log_mel_to_audio(S, method="reference")``, librosa's NNLS + 32 Griffin-Lim iterations
  (the study's inversion, used for the report's audio files);
- ``fast``: ``method="fast"``, FISTA NNLS from the clipped pseudo-inverse + our fast Griffin-Lim (32 it.);
- ``fast, warm``: the fast method started from the phase of a nearby spectrogram (90 % this clip,
  10 % the next clip, in dB), as while a slider is dragged (16 iterations);
- ``pinv``: the clipped pseudo-inverse without NNLS iterations (+ fast Griffin-Lim): fast, but worse.

Targets (issue 12): ``fast`` within 0.1 PESQ and 0.01 STOI of ``reference`` in at most 0.3x its time,
on a quiet machine and (``--busy``) with a busy neighbour.

Usage: ``python benchmarks/inversion.py [--data-dir DIR] [--clips 12] [--repeats 3] [--busy]``
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from train import _busy_core  # noqa: E402 - the one busy neighbour of the benchmarks

from emovae_utils import data, dsp, inversion  # noqa: E402


def _score(clean: np.ndarray, y: np.ndarray, sr: int) -> tuple[float, float]:
    from pesq import pesq
    from pystoi import stoi

    n = min(len(clean), len(y))
    return float(pesq(sr, clean[:n], y[:n], "wb")), float(stoi(clean[:n], y[:n], sr, extended=False))


def _time(fn, repeats: int) -> tuple[np.ndarray, float]:
    out = fn()  # warm-up (caches, first-touch)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return out, 1000.0 * float(np.median(ts))


def _measure(methods: dict, pairs: list, repeats: int, sr: int, score: bool) -> dict[str, dict[str, float]]:
    """Median ms per clip of each method (and, with ``score``, mean PESQ-wb and STOI), printed as they come."""
    results: dict[str, dict[str, float]] = {}
    for name, make in methods.items():
        ms, pq, st = [], [], []
        for i, (_, clean) in enumerate(pairs):
            y, t = _time(make(i), repeats)
            ms.append(t)
            if score:
                p, s = _score(clean, y, sr)
                pq.append(p)
                st.append(s)
        results[name] = r = dict(ms=float(np.median(ms)))
        if score:
            r.update(pesq=float(np.mean(pq)), stoi=float(np.mean(st)))
        quality = f"   PESQ-wb {r['pesq']:.3f}   STOI {r['stoi']:.4f}" if score else ""
        print(f"  {name:12s} {r['ms']:7.1f} ms{quality}", flush=True)
    return results


def _verdict(label: str, results: dict, scores: dict) -> bool:
    ref, fast = results["reference"], results["fast"]
    ratio = fast["ms"] / ref["ms"]
    d_pesq = scores["fast"]["pesq"] - scores["reference"]["pesq"]
    d_stoi = scores["fast"]["stoi"] - scores["reference"]["stoi"]
    ok = ratio <= 0.3 and d_pesq >= -0.1 and d_stoi >= -0.01
    print(f"fast vs reference, {label}: {fast['ms']:.1f} vs {ref['ms']:.1f} ms, {ratio:.2f}x the time, "
          f"PESQ {d_pesq:+.3f}, STOI {d_stoi:+.4f} (target: <= 0.3x, >= -0.1, >= -0.01): {'met' if ok else 'NOT met'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="RAVDESS folder (default: as data.resolve_data_dir)")
    parser.add_argument("--clips", type=int, default=12, help="clips, spread over the sorted index (default: 12)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per clip and method (default: 3)")
    parser.add_argument("--busy", action="store_true",
                        help="also time every method with another process keeping one core busy (default: off)")
    args = parser.parse_args(argv)

    c = dsp.PreprocessConfig()
    index = data.ravdess_index(args.data_dir, warn=False)
    rows = index.iloc[np.unique(np.linspace(0, len(index) - 1, args.clips).round().astype(int))]
    pairs = [inversion.clean_pair(p, c) for p in rows["path"]]
    print(f"{len(pairs)} clips: " + ", ".join(rows["name"]), flush=True)

    def warm(i: int):
        S = pairs[i][0]
        near = 0.9 * S + 0.1 * pairs[(i + 1) % len(pairs)][0]
        _, angles = inversion.mel_to_audio_fast(near, c, return_phase=True)
        return lambda: inversion.log_mel_to_audio(S, c, method="fast", init=angles)

    methods = {
        "reference": lambda i: (lambda: inversion.log_mel_to_audio(pairs[i][0], c, method="reference")),
        "fast": lambda i: (lambda: inversion.log_mel_to_audio(pairs[i][0], c, method="fast")),
        "fast, warm": warm,
        "pinv": lambda i: (lambda: inversion.mel_to_audio_fast(pairs[i][0], c, nnls_iter=0)),
    }
    quiet = _measure(methods, pairs, args.repeats, c.sr, score=True)
    busy = None
    if args.busy:
        print("with another process keeping one core busy:", flush=True)
        hog = _busy_core(3600)
        try:
            busy = _measure(methods, pairs, args.repeats, c.sr, score=False)
        finally:
            hog.kill()
            hog.wait()
    print()
    _verdict("quiet", quiet, quiet)
    if busy is not None:
        _verdict("one core busy", busy, quiet)
    print(f"(median ms per clip over {len(pairs)} clips, {args.repeats} timed calls each, the library's thread "
          f"policy: one BLAS thread; PESQ/STOI: mean over clips, the same outputs quiet or busy)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
