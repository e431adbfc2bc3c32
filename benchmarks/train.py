"""Speed of ``emovae_utils.train.fit``: its default (stock) path, the opt-in accelerator, and a truly stock loop.

Three ways to train the same model (the same initial weights, Adam(lr=1e-3),
gradient-norm clipping at 1.0, the same batch size and thread count):

* ``fit``: the default path, stock PyTorch through ``model.forward`` and
  ``model.loss_function`` (autograd, ``torch.optim.Adam``, ``clip_grad_norm_``);
* ``fit(accel="gemm")``: the hand-written accelerator (:mod:`emovae_utils.accel`);
* the plain loop one would write from the PyTorch tutorials, sharing no code
  with the package beyond the ``nn`` model: ``TensorDataset`` +
  ``DataLoader(shuffle=True)``, ``F.mse_loss`` plus the KL written out,
  ``torch.optim.Adam``, ``torch.nn.utils.clip_grad_norm_``, ``loss.item()``.

The data are RANDOM spectrogram-shaped arrays (N, 80, 128) of dB-like values
(the speed of a step does not depend on the values). Times are steady state:
per epoch after a few warm-up epochs. Each measurement runs in its own fresh
Python process and is repeated; the median and the best repeat are printed,
with the load average (CPU timings on a shared machine are noisy). When CUDA is
available the default path is also timed on the GPU.

``--busy`` times ``fit`` with its default thread count on a quiet machine and
with one other process keeping a core busy (the target: at most 3x slower).
``--paper`` also runs the two paper-preset fits in full, as the notebooks do
(their thread counts, ``accel="auto"``, checkpoints every 1000 epochs, a
Griffin-Lim training sample every 100 epochs) on the REAL clips when the
RAVDESS features can be loaded, else on random arrays.

Usage::

    .venv/bin/python benchmarks/train.py                 # the comparison (~3 min)
    .venv/bin/python benchmarks/train.py --epochs 400 --repeats 5
    .venv/bin/python benchmarks/train.py --busy          # + busy-machine timing
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


def _stock_loop(model, X, bs, epochs_fn):
    """The tutorial loop: DataLoader, F.mse_loss + KL, torch.optim.Adam, clip_grad_norm_."""
    import torch
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(torch.as_tensor(X)), batch_size=bs or len(X), shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def epoch():
        log = []
        for (xb,) in loader:
            opt.zero_grad()
            mu, logvar = model.encode(xb)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            rec = F.mse_loss(model.decode(z), xb)
            kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()
            loss = rec + kl
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            log.append((rec.item(), kl.item(), loss.item()))
        return log

    return epochs_fn(epoch)


def _worker(job: dict) -> dict:
    """Run one measurement in this (fresh) process and return its numbers."""
    from emovae_utils.models import EmotionVAE
    from emovae_utils.train import FitConfig, fit, set_determinism

    n, bs, epochs, warmup, threads = job["n"], job["bs"], job["epochs"], job["warmup"], job["threads"]
    X = _data(n)
    set_determinism(0, threads)
    model = EmotionVAE()
    if job["kind"] == "fit":
        stamps = []  # end of every epoch: steady state, without fit's one-off set-up
        config = FitConfig(epochs=warmup + epochs, batch_size=bs, threads=threads, progress=False, sample_every=None,
                           accel=job.get("accel"), device=job.get("device", "cpu"))
        fit(model, X, config, callbacks=[lambda epoch, losses: stamps.append(time.perf_counter())])
        return {"ms_per_epoch": 1e3 * (stamps[-1] - stamps[warmup - 1]) / epochs}
    if job["kind"] == "plain":
        def timed(epoch):
            for _ in range(warmup):
                epoch()
            t0 = time.perf_counter()
            for _ in range(epochs):
                epoch()
            return {"ms_per_epoch": 1e3 * (time.perf_counter() - t0) / epochs}

        return _stock_loop(model, X, bs, timed)
    if job["kind"] == "paper":
        X, what = _paper_clips(n)
        out = Path(job["out_dir"])
        t0 = time.perf_counter()
        config = FitConfig(epochs=epochs, batch_size=bs, threads=threads, checkpoint_every=1000, sample_every=100,
                           accel="auto")
        hist = fit(model, X, config, out_dir=out)
        wall = time.perf_counter() - t0
        run = json.loads((out / "run.json").read_text())
        return {"wall_s": wall, "final": hist.iloc[-1].to_dict(), "data": what, "accel": run["accel"],
                "render_mode": run["render_mode"], "render_workers": run["render_workers"],
                "samples": len(list((out / "training_samples").glob("*.wav")))}
    raise ValueError(job["kind"])


def _busy_core(stop_after: float) -> subprocess.Popen:
    """Another process keeping one core busy (a pure-Python spin loop)."""
    code = f"import time\nt = time.time() + {stop_after}\nwhile time.time() < t:\n    pass\n"
    return subprocess.Popen([sys.executable, "-c", code])


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


def _case_jobs(threads: int, device: str) -> list[tuple[str, dict]]:
    jobs = [("fit, default (stock autograd) path", dict(kind="fit", accel=None)),
            ('fit(accel="gemm")', dict(kind="fit", accel="gemm")),
            ("plain stock loop (DataLoader, F.mse_loss)", dict(kind="plain"))]
    if device == "cuda":
        jobs.append(("fit, default path on CUDA", dict(kind="fit", accel=None, device="cuda")))
    return [(label, dict(job, threads=threads)) for label, job in jobs]


def _timed(job: dict, repeats: int) -> tuple[float, float]:
    times = [_run(job)["ms_per_epoch"] for _ in range(repeats)]
    return statistics.median(times), min(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=200,
                    help="timed epochs per measurement for 30 clips (360 clips: a tenth, at least 3)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed epochs first (at least 1)")
    ap.add_argument("--repeats", type=int, default=3, help="fresh-process repeats per measurement")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: fit's default)")
    ap.add_argument("--busy", action="store_true",
                    help="also time fit (default threads, both paths) with one other process keeping a core busy")
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
    print(f"CPU: {os.cpu_count()} cores; torch {torch.__version__}; threads: {threads}; CUDA: "
          + (torch.cuda.get_device_name(0) if device == "cuda" else "not available (GPU path not timed)"))
    print("data: random arrays of the real shape (N, 80, 128), dB-like values")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for case, (n, bs, paper_epochs, _) in CASES.items():
        epochs = args.epochs if n <= 30 else max(3, args.epochs // 10)
        print(f"\n{case} ({epochs} timed epochs x {args.repeats} repeats)")
        results = {}
        for label, job in _case_jobs(threads, device):
            job.update(n=n, bs=bs, epochs=epochs, warmup=args.warmup)
            results[label] = _timed(job, args.repeats)
            print(f"  {label:44s} {results[label][0]:9.2f} ms/epoch (best {results[label][1]:.2f})")
        plain = results["plain stock loop (DataLoader, F.mse_loss)"][0]
        for label, (med, _) in results.items():
            if not label.startswith("plain"):
                print(f"  speed-up of {label} over the plain stock loop: {plain / med:.2f}x")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")

    if args.busy:
        n, bs = 30, None
        print(f"\nbusy machine: 30 clips, full batch, fit's default threads ({default_threads()}), "
              f"{args.epochs} timed epochs x {args.repeats} repeats")
        for accel in (None, "gemm"):
            job = dict(kind="fit", accel=accel, n=n, bs=bs, epochs=args.epochs, warmup=args.warmup,
                       threads=default_threads())
            quiet = _timed(job, args.repeats)[0]
            hog = _busy_core(3600)
            try:
                busy = _timed(job, args.repeats)[0]
            finally:
                hog.kill()
            print(f"  accel={accel!s:5s} quiet {quiet:8.2f} ms/epoch; one core busy {busy:8.2f} ms/epoch: "
                  f"{busy / quiet:.2f}x (target <= 3x: {'met' if busy <= 3 * quiet else 'NOT met'})")

    if args.paper:
        print("\npaper preset, full runs (accel='auto', checkpoints every 1000 epochs, a training sample every 100):")
        for case, (n, bs, paper_epochs, paper_threads) in CASES.items():
            with tempfile.TemporaryDirectory() as tmp:
                res = _run(dict(kind="paper", n=n, bs=bs, epochs=paper_epochs, warmup=0,
                                threads=paper_threads, out_dir=tmp, result=str(Path(tmp) / "result.json")))
            print(f"  {case}, {res['data']}, accel {res['accel']}, {paper_threads} training thread(s), samples "
                  f"{res['render_mode']} on {res['render_workers']} process(es): {paper_epochs} epochs "
                  f"in {res['wall_s']:.1f} s ({res['wall_s'] / 60:.2f} min), {res['samples']} training samples")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
