"""Mel inversion benchmark: milliseconds, PESQ-wb and STOI of each method on the same real clips.

For each clip (spread over actors and emotions) the features are computed by the study's recipe, and
the clean reference is the voiced, peak-normalised signal those 128 frames describe
(:func:`emovae_utils.inversion.clean_pair`). Each method inverts the features; its output is scored
against the clean signal with PESQ (wide band, package ``pesq``) and STOI (package ``pystoi``), and timed
(median of ``--repeats`` calls per clip, after one untimed warm-up call; one BLAS/FFT thread).

Methods
- ``reference``: ``inversion.log_mel_to_audio(S, method="reference")``, librosa's NNLS + 32 Griffin-Lim iterations
  (the study's inversion, used for the report's audio files);
- ``fast``: ``method="fast"``, FISTA NNLS from the clipped pseudo-inverse + our fast Griffin-Lim (32 it.);
- ``fast, warm``: the fast method started from the phase of a nearby spectrogram (90 % this clip,
  10 % the next clip, in dB), as while a slider is dragged (16 iterations);
- ``pinv``: the clipped pseudo-inverse without NNLS iterations (+ fast Griffin-Lim): fast, but worse.

Targets (issue 12): ``fast`` within 0.1 PESQ and 0.01 STOI of ``reference`` in at most 0.3x its time.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/inversion.py [--data-dir DIR] [--clips 12] [--repeats 3]``
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--clips", type=int, default=12, help="clips, spread over the sorted index")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per clip and method")
    args = parser.parse_args(argv)

    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
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
    results: dict[str, dict[str, float]] = {}
    for name, make in methods.items():
        ms, pq, st = [], [], []
        for i, (_, clean) in enumerate(pairs):
            y, t = _time(make(i), args.repeats)
            p, s = _score(clean, y, c.sr)
            ms.append(t)
            pq.append(p)
            st.append(s)
        results[name] = dict(ms=float(np.median(ms)), pesq=float(np.mean(pq)), stoi=float(np.mean(st)))
        r = results[name]
        print(f"  {name:12s} {r['ms']:7.1f} ms   PESQ-wb {r['pesq']:.3f}   STOI {r['stoi']:.4f}", flush=True)

    ref, fast = results["reference"], results["fast"]
    ratio = fast["ms"] / ref["ms"]
    d_pesq, d_stoi = fast["pesq"] - ref["pesq"], fast["stoi"] - ref["stoi"]
    ok = ratio <= 0.3 and d_pesq >= -0.1 and d_stoi >= -0.01
    print(f"\nfast vs reference: {ratio:.2f}x the time, PESQ {d_pesq:+.3f}, STOI {d_stoi:+.4f} "
          f"(target: <= 0.3x, >= -0.1, >= -0.01): {'met' if ok else 'NOT met'}")
    print(f"(median ms per clip over {len(pairs)} clips, {args.repeats} timed calls each, one thread; "
          f"PESQ/STOI: mean over clips)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
