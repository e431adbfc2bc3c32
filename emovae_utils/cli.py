"""The ``emovae`` command: what users run from a shell.

Subcommands::

    emovae run [--preset paper|smoke] [--only NN ...] [-p NAME VALUE] ...   # the notebooks (papermill)
    emovae download [DEST]                                                  # RAVDESS from Zenodo
    emovae benchmark NAME [ARGS ...]                                        # benchmarks/NAME.py of the project
    emovae readme [--figures-dir DIR]                                       # README results from figures/*.csv
    emovae replicate OTHER_FIGURES --comparison TEXT                       # figures/replication.csv

``emovae COMMAND --help`` states each command's defaults. ``emovae run`` is
``python -m emovae_utils.pipeline``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from . import pipeline

__all__ = ["main", "make_parser", "package_version"]

DESCRIPTION = """\
emovae: VAEs on RAVDESS speech emotion. Run the study's notebooks, download the data, time things.
Run "emovae COMMAND --help" for a command's options and their defaults.
"""


def package_version() -> str:
    """The installed distribution's version (``"unknown"`` when run from an uninstalled source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("emovae")
    except PackageNotFoundError:
        return "unknown"


def _default_data_dir(project: str | None = None) -> Path:
    """``$EMOVAE_DATA_DIR``, else ``<project>/data/ravdess``, else ``./data/ravdess``."""
    if os.environ.get("EMOVAE_DATA_DIR"):
        return Path(os.environ["EMOVAE_DATA_DIR"]).expanduser()
    try:
        root = pipeline.find_project(project)
    except FileNotFoundError:
        root = Path.cwd()
    return root / "data" / "ravdess"


def _download(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .download import DownloadError, download_ravdess

    if args.dest is None and args.project:
        try:
            pipeline.find_project(args.project)
        except FileNotFoundError as err:
            parser.error(str(err))
    dest = Path(args.dest).expanduser().resolve() if args.dest else _default_data_dir(args.project)
    try:
        path = download_ravdess(dest, keep_zip=args.keep_zip, timeout=args.timeout)
    except DownloadError as err:
        print(f"emovae download: {err}", file=sys.stderr)
        return 1
    print(f"RAVDESS speech audio in {path}")
    if Path(path).resolve() != _default_data_dir().resolve():
        print(f"Point the code at it with: export EMOVAE_DATA_DIR={path}")
    return 0


def _benchmark(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        project = pipeline.find_project(args.project)
    except FileNotFoundError as err:
        parser.error(f"{err} (the benchmarks live in its benchmarks/ folder)")
    folder = project / "benchmarks"
    available = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
    if args.name not in available:
        parser.error(f"no benchmark {args.name!r} in {folder}; choose from {', '.join(available) or 'none'}")
    cmd = [sys.executable, str(folder / f"{args.name}.py"), *args.args]
    return subprocess.call(cmd, cwd=project)


def _readme(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from . import readme

    try:
        project = pipeline.find_project(args.project)
        changed = readme.update_readme(project / "README.md", project / args.figures_dir)
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    print(f"{project / 'README.md'}: results section {'updated' if changed else 'already up to date'} "
          f"from {project / args.figures_dir}")
    return 0


def _replicate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .replication import VERDICTS_NAME, record_replication

    project = pipeline.find_project(args.project)
    first, second = project / args.figures_dir / VERDICTS_NAME, Path(args.other) / VERDICTS_NAME
    for path in (first, second):
        if not path.exists():
            parser.error(f"{path} does not exist: run the preset that writes it first")
    table = record_replication(first, second, args.comparison, project / args.figures_dir)
    block = table[table["comparison"] == args.comparison]
    print(f"{args.comparison}: {int(block['same_verdict'].sum())} of {len(block)} verdicts identical, "
          f"{int(block['inside_each_other'].sum())} of {len(block)} statistics inside each other's interval "
          f"-> {project / args.figures_dir / 'replication.csv'}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    """The ``emovae`` argument parser, one subparser per command."""
    parser = argparse.ArgumentParser(prog="emovae", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run the study's notebooks with a preset (default: paper, writes figures/)",
                         description=pipeline.describe(), epilog=pipeline.EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    pipeline.add_arguments(run)
    run.set_defaults(handler=pipeline.run_from_args, subparser=run)

    dl = sub.add_parser("download", help="download RAVDESS speech audio (208.5 MB) from Zenodo, resumable",
                        description="Download Audio_Speech_Actors_01-24.zip (RAVDESS speech, Zenodo record 1188976), "
                                    "resuming a partial download, check its MD5 and extract the Actor_XX folders. "
                                    "Nothing is downloaded when DEST already holds all 24 actors.")
    dl.add_argument("dest", nargs="?", metavar="DEST",
                    help="target folder, relative to the current directory (default: $EMOVAE_DATA_DIR if set, else "
                         "data/ravdess in the project folder, else data/ravdess in the current directory)")
    dl.add_argument("--keep-zip", action="store_true", help="keep the verified archive after extracting (default: delete it)")
    dl.add_argument("--timeout", type=float, default=30.0, metavar="S",
                    help="socket timeout in seconds per connection and read (default: 30)")
    dl.add_argument("--project", metavar="DIR", help="project folder for the default DEST (default: found as for run)")
    dl.set_defaults(handler=_download, subparser=dl)

    bench = sub.add_parser("benchmark", help="run a benchmark script of the project (preprocess, train, ...)",
                           description="Run <project>/benchmarks/NAME.py with this Python, passing ARGS on "
                                       "(e.g. emovae benchmark train --help lists that benchmark's options and "
                                       "defaults). The benchmarks are part of the project folder, not the package.")
    bench.add_argument("name", metavar="NAME", help="benchmark script name, e.g. preprocess, train or inversion")
    bench.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="passed to the script (default: none)")
    bench.add_argument("--project", metavar="DIR", help="project folder (default: found as for run)")
    bench.set_defaults(handler=_benchmark, subparser=bench)

    rd = sub.add_parser("readme", help="regenerate the README's results section from the result files",
                        description="Render figures/verdicts.csv, loss_summary.csv, table_representation_probes.csv "
                                    "and run_log.csv into README.md between its results markers.")
    rd.add_argument("--figures-dir", default="figures", metavar="DIR",
                    help="result files, relative to the project folder (default: figures)")
    rd.add_argument("--project", metavar="DIR", help="project folder (default: found as for run)")
    rd.set_defaults(handler=_readme, subparser=rd)

    rp = sub.add_parser("replicate", help="compare another run's verdicts with figures/verdicts.csv",
                        description="Compare OTHER_FIGURES/verdicts.csv (e.g. runs/paper-seeds2/figures, the paper "
                                    "preset with other seeds) with the committed figures/verdicts.csv; the "
                                    "comparison's rows replace its earlier rows in figures/replication.csv.")
    rp.add_argument("other", metavar="OTHER_FIGURES", help="figures folder of the replicating run")
    rp.add_argument("--comparison", required=True, metavar="TEXT",
                    help="what differs, e.g. 'seed set 2 (paper-seeds2)'")
    rp.add_argument("--figures-dir", default="figures", metavar="DIR",
                    help="the committed run's result files, relative to the project folder (default: figures)")
    rp.add_argument("--project", metavar="DIR", help="project folder (default: found as for run)")
    rp.set_defaults(handler=_replicate, subparser=rp)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``emovae`` console script."""
    parser = make_parser()
    args = parser.parse_args(argv)
    return args.handler(args, args.subparser)  # the subcommand's parser reports its argument errors


if __name__ == "__main__":
    sys.exit(main())
