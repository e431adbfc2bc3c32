"""Speed of ``emovae_utils.train.fit`` against a plain PyTorch DataLoader loop.

Both loops do identical maths: the same ``EmotionVAE`` (same initial weights),
the same loss (``vae_loss``: element-mean MSE + KL), Adam(lr=1e-3), gradient
norm clipping at 1.0, the same batch size and thread count. The plain loop is
what one would write from the PyTorch tutorials: ``TensorDataset`` +
``DataLoader(shuffle=True)``, default ``torch.optim.Adam``,
``torch.nn.utils.clip_grad_norm_``, ``loss.item()`` per step.

For the loop comparison the data are RANDOM spectrogram-shaped arrays
(N, 80, 128) of dB-like values (the speed of a step does not depend on the
values). Times are steady state: per epoch after a few warm-up epochs, without
the one-off set-up of either loop. Each measurement runs in its own fresh
Python process (no state, allocator setting or thread pool is shared) and is
repeated; the median and the best repeat are printed. CPU timings on a shared
machine are noisy: the load average is printed with the results.

``--paper`` also runs the two paper-preset fits in full, as the notebooks do
(their thread counts, checkpoints every 1000 epochs, a Griffin-Lim training
sample every 100 epochs) on the REAL clips when the RAVDESS features can be
loaded (Actor 01 statement 01; the 12 male actors), else on random arrays.
Rendering time depends on the spectra: a trained model's reconstructions take
the NNLS mel inversion about twice as long as random arrays.

Usage::

    .venv/bin/python benchmarks/train.py                 # the loop comparison (~2 min)
    .venv/bin/python benchmarks/train.py --epochs 400 --repeats 5
    .venv/bin/python benchmarks/train.py --paper         # + full paper-preset fits (~8 min)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CASES = {  # name: (clips, batch size or None = full batch, paper epochs, paper-preset threads)
    "single actor: 30 clips, full batch": (30, None, 25000, 1),
    "12 actors: 360 clips, batch 64": (360, 64, 6000, 2),
}


def _data(n: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(-40.0, 20.0, (n, 80, 128)), -100, 40).astype(np.float32)


def _paper_clips(n: int):
    """The paper preset's clips (30: Actor 01 statement 01; 360: the 12 male actors) if available."""
    try:
        from emovae_utils import data

        X, index = data.load_features(progress=False)
    except Exception as exc:  # noqa: BLE001 - no data here: say so and use random arrays
        return _data(n), f"random arrays (no RAVDESS features: {type(exc).__name__})"
    if n <= 30:
        rows = index[(index.actor == 1) & (index.statement == 1)]
        what = "real clips: Actor 01, statement 01"
    else:
        rows = index[(index.statement == 1) & (index.gender == "male")]
        what = "real clips: the 12 male actors"
    return X[rows.index], f"{what} ({len(rows)} clips)"


def _worker(job: dict) -> dict:
    """Run one measurement in this (fresh) process and return its numbers."""
    import torch

    from emovae_utils.model import EmotionVAE, vae_loss
    from emovae_utils.train import fit, set_determinism

    n, bs, epochs, warmup, threads = job["n"], job["bs"], job["epochs"], job["warmup"], job["threads"]
    X = _data(n)
    set_determinism(0, threads)
    model = EmotionVAE()
    model.impl = job.get("impl", "gemm")
    if job["kind"] == "fit":
        stamps = []  # end of every epoch: steady state, without fit's one-off set-up
        fit(model, X, warmup + epochs, bs, threads=threads, progress=False, sample_every=None,
            callback=lambda epoch, losses: stamps.append(time.perf_counter()))
        return {"ms_per_epoch": 1e3 * (stamps[-1] - stamps[warmup - 1]) / epochs}
    if job["kind"] == "plain":
        from torch.utils.data import DataLoader, TensorDataset

        loader = DataLoader(TensorDataset(torch.as_tensor(X)), batch_size=bs or n, shuffle=True)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()

        def epoch():
            log = []
            for (xb,) in loader:
                opt.zero_grad()
                recon, mu, logvar = model(xb)
                total, rec, kl = vae_loss(recon, xb, mu, logvar, 1.0)
                total.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                log.append((rec.item(), kl.item(), total.item()))
            return log

        for _ in range(warmup):
            epoch()
        t0 = time.perf_counter()  # steady state, like fit's
        for _ in range(epochs):
            epoch()
        return {"ms_per_epoch": 1e3 * (time.perf_counter() - t0) / epochs}
    if job["kind"] == "paper":
        X, what = _paper_clips(n)
        out = Path(job["out_dir"])
        t0 = time.perf_counter()
        hist = fit(model, X, epochs, bs, threads=threads, progress=True, out_dir=out,
                   checkpoint_every=1000, sample_every=100)
        wall = time.perf_counter() - t0
        run = json.loads((out / "run.json").read_text())
        return {"wall_s": wall, "final": hist.iloc[-1].to_dict(), "data": what,
                "render_mode": run["render_mode"], "render_workers": run["render_workers"],
                "samples": len(list((out / "training_samples").glob("*.wav")))}
    if job["kind"] == "render":
        from emovae_utils import dsp
        from emovae_utils.train import _render_sample

        x0 = torch.as_tensor(X[:1])
        with tempfile.TemporaryDirectory() as tmp:
            _render_sample(model, x0, Path(tmp) / "a.wav", dsp)  # warm-up (imports, caches)
            t0 = time.perf_counter()
            for i in range(5):
                _render_sample(model, x0, Path(tmp) / f"{i}.wav", dsp)
        return {"ms": 1e3 * (time.perf_counter() - t0) / 5}
    raise ValueError(job["kind"])


def _run(job: dict, timeout: float | None = None) -> dict:
    """Run ``_worker(job)`` in a fresh interpreter."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_job", json.dumps(job)]
    proc = subprocess.run(cmd, capture_output=job["kind"] != "paper", text=True, timeout=timeout,
                          cwd=str(ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"job {job} failed:\n{proc.stderr}")
    lines = (proc.stdout or "").strip().splitlines()
    if not lines:  # paper jobs print to the terminal; result in a file
        return json.loads(Path(job["result"]).read_text())
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=200,
                    help="timed epochs per measurement for 30 clips (360 clips: a tenth, at least 3)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed epochs first (at least 1)")
    ap.add_argument("--repeats", type=int, default=3, help="fresh-process repeats per measurement")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: fit's default)")
    ap.add_argument("--stock-layers", action="store_true",
                    help="also time the plain loop with the nn.Conv1d path (model.impl='torch')")
    ap.add_argument("--paper", action="store_true",
                    help="also time the full paper-preset fits (25000 and 6000 epochs, with "
                         "checkpoints every 1000 and training samples every 100 epochs)")
    ap.add_argument("--_job", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._job:
        job = json.loads(args._job)
        res = _worker(job)
        if job["kind"] == "paper":
            Path(job["result"]).write_text(json.dumps(res, default=float))
        else:
            print(json.dumps(res))
        return 0

    import torch

    from emovae_utils.train import default_threads

    threads = args.threads or default_threads()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device: {device} ({os.cpu_count()} CPU cores); torch {torch.__version__}; threads: {threads}")
    print("data: random arrays of the real shape (N, 80, 128), dB-like values")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    kinds = [("fit", "gemm"), ("plain", "gemm")] + ([("plain", "torch")] if args.stock_layers else [])
    labels = {("fit", "gemm"): "fit", ("plain", "gemm"): "plain DataLoader loop",
              ("plain", "torch"): "plain loop, stock nn.Conv1d layers"}
    results = {}
    for case, (n, bs, paper_epochs, _) in CASES.items():
        epochs = args.epochs if n <= 30 else max(3, args.epochs // 10)
        print(f"\n{case} ({epochs} timed epochs x {args.repeats} repeats)")
        for kind, impl in kinds:
            times = [
                _run(dict(kind=kind, impl=impl, n=n, bs=bs, epochs=epochs, warmup=args.warmup,
                          threads=threads))["ms_per_epoch"]
                for _ in range(args.repeats)
            ]
            med, best = statistics.median(times), min(times)
            results[(case, kind, impl)] = (med, best)
            print(f"  {labels[(kind, impl)]:36s} {med:9.2f} ms/epoch (best {best:.2f})")
        fit_med, fit_best = results[(case, "fit", "gemm")]
        for kind, impl in kinds[1:]:
            med, best = results[(case, kind, impl)]
            print(f"  speed-up of fit over {labels[(kind, impl)]}: {med / fit_med:.2f}x median "
                  f"({best / fit_best:.2f}x best)")
        proj = fit_med * paper_epochs / 1e3
        print(f"  projected {paper_epochs} epochs at {threads} threads, training only: {proj:7.1f} s "
              f"= {proj / 60:.2f} min")
    try:
        render = _run(dict(kind="render", n=1, bs=None, epochs=0, warmup=0, threads=threads))["ms"]
        print(f"\ntraining sample (Griffin-Lim + wav) of a random array: {render:.1f} ms each")
    except RuntimeError as exc:  # dsp missing
        print(f"\n(training-sample rendering not timed: {str(exc).splitlines()[-1]})")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")

    if args.paper:
        print("\npaper preset, full runs (checkpoints every 1000 epochs, a training sample every 100):")
        for case, (n, bs, paper_epochs, paper_threads) in CASES.items():
            with tempfile.TemporaryDirectory() as tmp:
                res = _run(dict(kind="paper", n=n, bs=bs, epochs=paper_epochs, warmup=0,
                                threads=paper_threads, out_dir=tmp, result=str(Path(tmp) / "result.json")))
            limit = 180 if n <= 30 else 600
            print(f"  {case}, {res['data']}, {paper_threads} training thread(s), samples "
                  f"{res['render_mode']} on {res['render_workers']} process(es): {paper_epochs} epochs "
                  f"in {res['wall_s']:.1f} s ({res['wall_s'] / 60:.2f} min; target <= {limit / 60:.0f} min: "
                  f"{'met' if res['wall_s'] <= limit else 'NOT met'}), {res['samples']} training samples")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
