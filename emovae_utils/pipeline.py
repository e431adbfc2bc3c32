"""Run the report's notebooks in order with papermill.

Usage::

    python -m emovae_utils.pipeline --preset paper        # the study, figures into figures/
    python -m emovae_utils.pipeline --preset smoke        # a few actors and epochs
    python -m emovae_utils.pipeline --preset smoke --only 01 02
    python -m emovae_utils.pipeline --preset smoke --prepare-only --output-dir runs/nbval

Parameters come from ``notebooks/presets.yaml``: for each preset, ``_all``
holds values given to every notebook that declares them, and a section per
notebook (file stem) holds that notebook's own values. Executed notebooks go
to ``runs/<preset>/`` with ``run_log.csv`` (one row per notebook: wall time,
status); figures go where the preset's ``figures_dir`` says (``figures/`` for
``paper``, which is committed so GitHub readers see the last paper run).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from .paths import PROJECT_ROOT, project_path

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
PRESETS_FILE = NOTEBOOKS_DIR / "presets.yaml"


def load_presets(path: str | Path = PRESETS_FILE) -> dict[str, dict[str, dict[str, Any]]]:
    """Read the presets file.

    Returns
    -------
    dict
        ``{preset: {"_all": {...}, "<notebook stem>": {...}}}``.
    """
    with open(path) as f:
        presets = yaml.safe_load(f)
    if not isinstance(presets, dict) or not presets:
        raise ValueError(f"{path} holds no presets.")
    return presets


def notebook_parameters(notebook: Path, preset: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The parameters one notebook gets from a preset.

    ``_all`` values are passed only where the notebook's ``parameters`` cell
    declares them; the notebook's own section is passed whole, and a name it
    does not declare is an error (a typo would otherwise be silently ignored).
    """
    import papermill

    declared = set(papermill.inspect_notebook(str(notebook)))
    own = dict(preset.get(notebook.stem) or {})
    unknown = sorted(set(own) - declared)
    if unknown:
        raise ValueError(f"Preset parameters {unknown} are not declared in {notebook.name}'s parameters cell.")
    common = {k: v for k, v in (preset.get("_all") or {}).items() if k in declared}
    return {**common, **own}


def select_notebooks(only: list[str] | None = None, directory: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Notebooks ``NN_*.ipynb`` in order, optionally only those whose number or stem is in ``only``."""
    notebooks = sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))
    if only:
        notebooks = [p for p in notebooks if p.stem[:2] in only or p.stem in only]
    if not notebooks:
        raise FileNotFoundError(f"No notebooks selected in {directory} (only={only}).")
    return notebooks


def run(
    preset_name: str,
    only: list[str] | None = None,
    output_dir: str | Path | None = None,
    prepare_only: bool = False,
    presets_file: str | Path = PRESETS_FILE,
) -> Path:
    """Execute (or only parameterise) the notebooks with one preset.

    Parameters
    ----------
    preset_name : str
        A key of the presets file, e.g. ``"paper"`` or ``"smoke"``.
    only : list of str, optional
        Notebook numbers (``"02"``) or stems to run.
    output_dir : str or Path, optional
        Defaults to ``runs/<preset>``.
    prepare_only : bool
        Inject parameters without executing (outputs stored in the source
        notebooks are kept; used by the nbval tests).
    presets_file : str or Path

    Returns
    -------
    pathlib.Path
        The output folder, holding the notebooks and ``run_log.csv``.
    """
    import papermill

    presets = load_presets(presets_file)
    if preset_name not in presets:
        raise KeyError(f"Unknown preset {preset_name!r}; {presets_file} has {sorted(presets)}.")
    out = project_path(output_dir or Path("runs") / preset_name, create=True)
    log_path = out / "run_log.csv"
    with open(log_path, "w", newline="") as log:
        writer = csv.writer(log)
        writer.writerow(["notebook", "preset", "started", "seconds", "status"])
        for nb in select_notebooks(only):
            params = notebook_parameters(nb, presets[preset_name])
            started = dt.datetime.now().isoformat(timespec="seconds")
            t0 = time.perf_counter()
            status = "ok"
            try:
                papermill.execute_notebook(
                    str(nb),
                    str(out / nb.name),
                    parameters=params,
                    kernel_name="python3",
                    cwd=str(NOTEBOOKS_DIR),
                    prepare_only=prepare_only,
                    progress_bar=sys.stderr.isatty(),
                )
            except BaseException as err:  # noqa: BLE001 - log, then re-raise
                status = f"failed: {type(err).__name__}"
                raise
            finally:
                seconds = time.perf_counter() - t0
                writer.writerow([nb.name, preset_name, started, f"{seconds:.1f}", status])
                log.flush()
                if not prepare_only:
                    print(f"{nb.name}: {status} in {seconds:.1f} s", flush=True)
    return out


def copy_checked_outputs(executed: str | Path, source: str | Path) -> int:
    """Copy the outputs of ``# NBVAL_CHECK_OUTPUT`` cells from an executed notebook into its source.

    The source notebooks are committed without outputs except these cells,
    whose outputs are the expectations the nbval tests check. Run this after
    a deliberate change to what such a cell prints.

    Returns
    -------
    int
        Number of cells updated.
    """
    import nbformat

    done = nbformat.read(str(executed), as_version=4)
    src = nbformat.read(str(source), as_version=4)
    by_source = {c.source: c for c in done.cells if c.cell_type == "code"}
    n = 0
    for cell in src.cells:
        if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in cell.source and cell.source in by_source:
            cell.outputs = by_source[cell.source].outputs
            cell.execution_count = by_source[cell.source].execution_count  # nbval skips unrun cells
            n += 1
    nbformat.write(src, str(source))
    return n


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--only", nargs="*", help="notebook numbers or stems, e.g. 01 02")
    parser.add_argument("--output-dir")
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--refresh-checks", action="store_true",
                        help="after running, copy NBVAL_CHECK_OUTPUT outputs into the source notebooks")
    args = parser.parse_args(argv)
    out = run(args.preset, args.only, args.output_dir, args.prepare_only)
    if args.refresh_checks and not args.prepare_only:
        for nb in select_notebooks(args.only):
            print(f"{nb.name}: {copy_checked_outputs(out / nb.name, nb)} checked output(s) refreshed")
    print(f"Notebooks and run_log.csv in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
