"""Preprocessing benchmark: cold full-dataset build, cached load, sequential baseline, agreement.

Prints
- clips/s of a cold ``load_features`` build (empty cache, all cores), imports excluded;
- the same steps in a straightforward sequential loop (``tests/reference_recipe.py``: librosa.load,
  librosa.resample, a per-frame WebRTC VAD loop, melspectrogram, power_to_db, fix_length), and the speed-up;
- the cached load time;
- the mean absolute dB difference per clip between the package's features and the independent
  recipe for one actor (Actor 01 by default).

Usage: ``python benchmarks/preprocess.py [--data-dir DIR] [--baseline-clips N]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from reference_recipe import reference_features  # noqa: E402

from emovae_utils import data  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--baseline-clips", type=int, default=1440,
                        help="clips timed in the sequential baseline (spread over all actors)")
    parser.add_argument("--actor", type=int, default=1)
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)

    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        X, index = data.load_features(args.data_dir, cache, progress=False)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        X2, _ = data.load_features(args.data_dir, cache, progress=False)
        cached = time.perf_counter() - t0
        t0 = time.perf_counter()
        X1, _ = data.load_features(args.data_dir, Path(cache) / "one", progress=False, workers=1)
        single = time.perf_counter() - t0
    assert np.array_equal(X, X2) and np.array_equal(X, X1)
    n = len(index)
    print(f"cold build:   {n} clips in {cold:.2f} s = {n / cold:.1f} clips/s  (target: <= 10 s)")
    print(f"one process:  {single:.2f} s = {n / single:.1f} clips/s (same code, workers=1; parallel gain "
          f"{single / cold:.2f}x)")
    print(f"cached load:  {cached:.3f} s  (target: <= 1 s)")

    step = max(1, n // args.baseline_clips)
    paths = list(index.path[::step])
    t0 = time.perf_counter()
    for p in paths:
        reference_features(p)
    seq = time.perf_counter() - t0
    rate = len(paths) / seq
    print(f"sequential:   {len(paths)} clips in {seq:.2f} s = {rate:.1f} clips/s "
          f"(projected {n / rate:.1f} s for {n})")
    print(f"speed-up:     {(n / cold) / rate:.2f}x  (target: >= 1.5x)")

    rows = index[index.actor == args.actor]
    diffs = np.array([np.mean(np.abs(X[i] - reference_features(p))) for i, p in zip(rows.index, rows.path)])
    print(f"agreement:    Actor {args.actor:02d}, {len(diffs)} clips, mean |dB| difference per clip: "
          f"mean {diffs.mean():.2e}, max {diffs.max():.2e}  (target: well under 0.5 dB)")


if __name__ == "__main__":
    main()
