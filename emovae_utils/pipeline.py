"""Run the study's notebooks in order with papermill.

Usage (``emovae run`` takes the same options)::

    python -m emovae_utils.pipeline                      # = --preset paper: the study, figures into figures/
    python -m emovae_utils.pipeline --preset smoke       # a few actors and epochs, figures into runs/smoke/figures/
    python -m emovae_utils.pipeline --preset smoke --only 01 02
    python -m emovae_utils.pipeline --preset smoke -p epochs 10 -p figures_dir my_figures
    python -m emovae_utils.pipeline --preset smoke --prepare-only --output-dir runs/nbval

Parameters come from ``notebooks/presets.yaml`` (or ``--presets FILE``): for
each preset, ``_all`` holds values given to every notebook that declares them,
and a section per notebook (file stem) holds that notebook's own values;
``-p NAME VALUE`` overrides both for every selected notebook that declares
``NAME``. Executed notebooks go to ``runs/<preset>/`` in the project folder with
``run_log.csv`` (one row per notebook: start, wall time, status; a rerun
replaces the rows of the notebooks it runs and keeps the others). They are
signed with nbformat's notary, so their audio players and HTML work when the
notebooks are opened in JupyterLab on this machine. Figures go where the
preset's ``figures_dir`` says: ``figures/`` for ``paper``, which is committed
so GitHub readers see the last paper run.

The notebooks live in the project folder (a clone of the repository), not in
the installed package: the runner uses ``--project DIR``, else
``$EMOVAE_PROJECT_DIR``, else the current directory or the nearest parent
holding ``notebooks/NN_*.ipynb``, else the checkout the package was installed
from (editable install).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from .extras import require
from .io import atomic_write
from .paths import PROJECT_ROOT

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
PRESETS_FILE = NOTEBOOKS_DIR / "presets.yaml"
DEFAULT_PRESET = "paper"
LOG_FIELDS = ["notebook", "preset", "started", "seconds", "status"]
#: Parameters whose names end like this are paths: ``-p`` values are resolved against the current directory.
PATH_SUFFIXES = ("_dir", "_file", "_path")
_NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class ProjectNotFoundError(FileNotFoundError):
    """No project folder (``notebooks/NN_*.ipynb``) was found for the runner."""


def is_project(path: str | Path) -> bool:
    """Tell whether ``path`` holds ``notebooks/NN_*.ipynb`` (a project folder the runner can use)."""
    notebooks = Path(path) / "notebooks"
    return notebooks.is_dir() and any(notebooks.glob(_NOTEBOOK_GLOB))


def find_project(project_dir: str | Path | None = None) -> Path:
    """The project folder whose notebooks the runner executes.

    Parameters
    ----------
    project_dir : str or Path, optional
        Used when given (relative to the current directory). Otherwise
        ``$EMOVAE_PROJECT_DIR``; otherwise the current directory or its nearest
        parent holding ``notebooks/NN_*.ipynb``; otherwise the source checkout
        this package lives in.

    Returns
    -------
    pathlib.Path
        Absolute.

    Raises
    ------
    ProjectNotFoundError
        With what to do (an installed wheel holds no notebooks).
    """
    explicit = project_dir or os.environ.get("EMOVAE_PROJECT_DIR")
    if explicit:
        path = Path(explicit).expanduser().resolve()
        if not is_project(path):
            source = "--project" if project_dir else "$EMOVAE_PROJECT_DIR"
            raise ProjectNotFoundError(
                f"{source} {path} holds no notebooks/NN_*.ipynb. Point it at a clone of the emovae "
                "repository (the folder with notebooks/ and notebooks/presets.yaml)."
            )
        return path
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if is_project(folder):
            return folder
    checkout = Path(__file__).resolve().parent.parent
    if is_project(checkout):
        return checkout
    raise ProjectNotFoundError(
        "No emovae project folder found: the runner executes the study's notebooks "
        "(notebooks/NN_*.ipynb and notebooks/presets.yaml), which are not part of the installed "
        f"package. Run it from inside a clone of the emovae repository (current directory: {cwd}), "
        "or pass --project DIR (or set EMOVAE_PROJECT_DIR)."
    )


def load_presets(path: str | Path = PRESETS_FILE) -> dict[str, dict[str, dict[str, Any]]]:
    """Read the presets file.

    Returns
    -------
    dict
        ``{preset: {"_all": {...}, "<notebook stem>": {...}}}``.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        One line naming the file and the line: not valid YAML, or not of that shape.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Presets file {path} not found; pass --presets FILE (a YAML file of presets).")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a YAML text file (byte {err.start} is not UTF-8).") from None
    try:
        _check_presets_shape(yaml.compose(text), path)
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        context = f"; {err.context} on line {err.context_mark.line + 1}" if err.context and err.context_mark else ""
        raise ValueError(f"{path}, line {mark.line + 1}: not valid YAML ({err.problem}{context}).") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err}).") from None


def _check_presets_shape(root: yaml.Node | None, path: Path) -> None:
    """Raise ValueError, naming the file and line, where the YAML is not ``{preset: {section: {name: value}}}``."""

    def where(node: yaml.Node) -> str:
        return f"{path}, line {node.start_mark.line + 1}"

    def what(node: yaml.Node) -> str:
        return "a list" if isinstance(node, yaml.SequenceNode) else f"the value {node.value!r}"

    if not isinstance(root, yaml.MappingNode) or not root.value:
        raise ValueError(f"{path}: holds no presets (expected `NAME:` lines, each followed by indented sections "
                         "`_all:` and notebook stems).")
    for name, preset in root.value:
        if not isinstance(preset, yaml.MappingNode):
            raise ValueError(f"{where(preset)}: preset {name.value!r} must be a mapping of sections (_all, notebook "
                             f"stems), not {what(preset)}.")
        for section, params in preset.value:
            if not (isinstance(params, yaml.MappingNode) or params.tag == "tag:yaml.org,2002:null"):
                raise ValueError(f"{where(params)}: section {section.value!r} of preset {name.value!r} must be a "
                                 f"mapping of parameter: value, not {what(params)}.")


def declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in the notebook's ``parameters`` cell, as papermill sees them."""
    papermill = require("papermill", "study", "running the study's notebooks")

    return set(papermill.inspect_notebook(str(notebook)))


def notebook_parameters(
    notebook: Path,
    preset: dict[str, dict[str, Any]],
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The parameters one notebook gets from a preset and command-line overrides.

    ``_all`` values and ``overrides`` are passed only where the notebook's
    ``parameters`` cell declares them; the notebook's own section is passed
    whole, and a name it does not declare is an error (a typo would otherwise
    be silently ignored). Overrides win over the preset.
    """
    declared = declared_parameters(notebook)
    own = dict(preset.get(notebook.stem) or {})
    unknown = sorted(set(own) - declared)
    if unknown:
        raise ValueError(f"Preset parameters {unknown} are not declared in {notebook.name}'s parameters cell.")
    common = {k: v for k, v in (preset.get("_all") or {}).items() if k in declared}
    extra = {k: v for k, v in (overrides or {}).items() if k in declared}
    return {**common, **own, **extra}


def select_notebooks(only: list[str] | None = None, directory: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Notebooks ``NN_*.ipynb`` in order, optionally only those whose number or stem is in ``only``.

    Raises
    ------
    FileNotFoundError
        The folder holds no notebooks.
    ValueError
        An entry of ``only`` names no notebook (nothing is run then).
    """
    directory = Path(directory)
    notebooks = sorted(directory.glob(_NOTEBOOK_GLOB))
    if not notebooks:
        raise FileNotFoundError(f"No notebooks NN_*.ipynb in {directory}.")
    if not only:
        return notebooks
    keys = [str(k).removesuffix(".ipynb") for k in only]
    keys = [k.zfill(2) if k.isdigit() else k for k in keys]
    unknown = [orig for orig, k in zip(only, keys) if not any(k in (p.stem[:2], p.stem) for p in notebooks)]
    if unknown:
        choices = ", ".join(f"{p.stem[:2]} ({p.stem})" for p in notebooks)
        raise ValueError(f"--only {' '.join(map(str, unknown))}: no such notebook in {directory}; choose from {choices}.")
    return [p for p in notebooks if p.stem[:2] in keys or p.stem in keys]


def parse_value(text: str) -> Any:
    """A ``-p`` value, parsed as YAML: ``10`` -> int, ``1e-3`` -> float, ``null``, ``[1, 3]``, ``true``."""
    if _FLOAT.fullmatch(text.strip()):  # YAML 1.1 reads 1e-3 (no dot) as a string
        return int(text) if text.strip().lstrip("+-").isdigit() else float(text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"-p value {text!r} is not valid YAML ({err}); quote it to pass a string.") from None


def cli_parameters(pairs: list[tuple[str, str]] | None, cwd: str | Path | None = None) -> dict[str, Any]:
    """``-p NAME VALUE`` pairs as parameters: values parsed as YAML, relative paths made absolute.

    A string value of a parameter named ``*_dir``, ``*_file`` or ``*_path`` is
    resolved against ``cwd`` (default: the current directory), as any path
    typed on a command line.
    """
    base = Path(cwd or Path.cwd())
    params: dict[str, Any] = {}
    for name, text in pairs or []:
        value = parse_value(text)
        if isinstance(value, str) and name.endswith(PATH_SUFFIXES):
            value = str((base / Path(value).expanduser()).resolve())
        params[name] = value
    return params


@dataclass(frozen=True)
class RunOptions:
    """What a run is asked to do: the arguments of :func:`plan_run` and :func:`run`.

    Attributes
    ----------
    preset_name : str
        A key of the presets file, e.g. ``"paper"`` (default) or ``"smoke"``.
    only : list of str, optional
        Notebook numbers (``"02"``) or stems to run; an unknown one is an error.
    output_dir : str or Path, optional
        Relative to the current directory. Default ``<project>/runs/<preset>``.
    prepare_only : bool
        Inject parameters without executing (outputs stored in the source
        notebooks are kept; used by the nbval tests).
    presets_file : str or Path, optional
        Default ``<project>/notebooks/presets.yaml``.
    parameters : dict, optional
        Overrides, given to every selected notebook that declares the name; a
        name no selected notebook declares is an error. Paths in them are used
        as given (see :func:`cli_parameters` for the command line's rule).
    project_dir : str or Path, optional
        See :func:`find_project`.

    Examples
    --------
    >>> RunOptions("smoke", only=["02"]).prepare_only
    False
    """

    preset_name: str = DEFAULT_PRESET
    only: list[str] | None = None
    output_dir: str | Path | None = None
    prepare_only: bool = False
    presets_file: str | Path | None = None
    parameters: dict[str, Any] | None = None
    project_dir: str | Path | None = None


@dataclass
class RunPlan:
    """A validated run: what :func:`execute` will do. Nothing is written while planning."""

    preset_name: str
    project: Path
    output_dir: Path
    notebooks: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)
    prepare_only: bool = False


def plan_run(options: RunOptions | None = None) -> RunPlan:
    """Validate a run's options and work out every notebook's parameters, writing nothing.

    Parameters
    ----------
    options : RunOptions, optional
        Default ``RunOptions()``: every notebook with the paper preset.

    Returns
    -------
    RunPlan

    Raises
    ------
    KeyError
        Unknown preset.
    ValueError
        Unknown notebook or parameter, a presets file that is not valid, an
        output folder that is a file or cannot be written.
    FileNotFoundError
        No project folder or presets file; or (unless ``prepare_only``) no
        RAVDESS where a notebook that declares ``data_dir`` would look.
    """
    o = options or RunOptions()
    project = find_project(o.project_dir)
    presets_path = Path(o.presets_file).expanduser() if o.presets_file else project / "notebooks" / "presets.yaml"
    presets = load_presets(presets_path)
    if o.preset_name not in presets:
        raise KeyError(f"Unknown preset {o.preset_name!r}; {presets_path} has {sorted(presets)}.")
    notebooks = select_notebooks(o.only, project / "notebooks")
    overrides = dict(o.parameters or {})
    planned = [(nb, notebook_parameters(nb, presets[o.preset_name], overrides)) for nb in notebooks]
    declared = set().union(*(declared_parameters(nb) for nb, _ in planned))
    unknown = sorted(set(overrides) - declared)
    if unknown:
        raise ValueError(f"-p {', '.join(unknown)}: no selected notebook declares it "
                         f"({', '.join(nb.stem for nb in notebooks)}); see each notebook's parameters cell.")
    out = Path(o.output_dir).expanduser().resolve() if o.output_dir else project / "runs" / o.preset_name
    _check_output_dir(out)
    if not o.prepare_only:
        _check_data(planned, project)
    return RunPlan(o.preset_name, project, out, planned, o.prepare_only)


def _check_output_dir(out: Path) -> None:
    """Raise ValueError when ``out`` cannot become a folder the run writes into."""
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"--output-dir {out}: {existing} is a file, not a folder; choose another output folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--output-dir {out}: cannot write into {existing} (permission denied or a read-only "
                         "file system); choose another output folder.")


def _check_data(planned: list[tuple[Path, dict[str, Any]]], project: Path) -> None:
    """Raise FileNotFoundError, saying what to do, when a notebook reading RAVDESS (``data_dir``) would not find it.

    Looks where the notebook's kernel will: ``data_dir`` (relative to the notebook's folder, its working
    directory), else ``$EMOVAE_DATA_DIR``, else ``<project>/data/ravdess``.
    """
    from . import data

    checked = set()
    for nb, params in planned:
        if "data_dir" not in declared_parameters(nb):
            continue
        value = params.get("data_dir") or os.environ.get("EMOVAE_DATA_DIR")
        folder = (nb.parent / Path(value).expanduser()).resolve() if value else project / "data" / "ravdess"
        source = ("data_dir" if params.get("data_dir") else "$EMOVAE_DATA_DIR") if value else "the default"
        command = f"emovae download {folder}" if source == "data_dir" else "emovae download"
        if folder in checked:
            continue
        checked.add(folder)
        try:
            data.ravdess_index(folder, warn=False)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{nb.name} reads RAVDESS from {folder} ({source}), which holds no RAVDESS clips. Download them "
                f"(208.5 MB) into it with `{command}`, or set EMOVAE_DATA_DIR to a folder holding Actor_01 ... "
                "Actor_24 (or pass -p data_dir DIR). Nothing was run."
            ) from None


def _update_log(path: Path, row: dict[str, str]) -> None:
    """Replace (or add) ``row``'s notebook in ``run_log.csv``, keeping the other notebooks' rows; atomic."""
    rows: list[dict[str, str]] = []
    if path.exists():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("notebook") and r["notebook"] != row["notebook"]]
    rows.append(row)
    rows.sort(key=lambda r: r["notebook"])

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=LOG_FIELDS, extrasaction="ignore", restval="")
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)


def _execute_notebook(nb: Path, target: Path, params: dict[str, Any], prepare_only: bool, progress_bar: bool) -> None:
    """papermill ``nb`` into ``target`` atomically (:func:`emovae_utils.io.atomic_write`).

    papermill writes a temporary file next to ``target`` (saving it as cells
    run), which replaces ``target`` once complete: a full disk or an interrupt
    leaves no partial notebook and no temporary file. A notebook whose cell
    raised is complete: it replaces ``target``, then its error is raised. An
    executed notebook gets the kernelspec JupyterLab writes
    (:func:`jupyterlab_kernelspec`) in the same write.
    """
    import nbformat
    import papermill

    failed: list[papermill.PapermillExecutionError] = []

    def write(tmp: Path) -> None:
        try:
            papermill.execute_notebook(str(nb), str(tmp), parameters=params, kernel_name="python3",
                                       cwd=str(nb.parent), prepare_only=prepare_only, progress_bar=progress_bar)
        except papermill.PapermillExecutionError as err:
            failed.append(err)
        done = nbformat.read(str(tmp), as_version=4)
        done.metadata.papermill.output_path = str(target)  # not the temporary name
        if not prepare_only:
            done.metadata["kernelspec"] = jupyterlab_kernelspec()
        nbformat.write(done, str(tmp))

    atomic_write(target, write)
    if failed:
        raise failed[0]


def sign_notebook(path: str | Path) -> None:
    """Mark an executed notebook as trusted on this machine (nbformat's notary).

    JupyterLab strips untrusted HTML and ``data:`` audio; the signature (kept in
    Jupyter's ``nbsignatures.db``, not in the file) makes them show. Only sign
    notebooks whose outputs this machine produced.
    """
    nbformat = require("nbformat", "study", "running the study's notebooks")
    from nbformat.sign import NotebookNotary

    nb = nbformat.read(str(path), as_version=4)
    notary = NotebookNotary()
    if hasattr(notary, "__enter__"):  # nbformat >= 5.11: closes its database on exit
        with notary:
            notary.sign(nb)
    else:
        notary.sign(nb)


def jupyterlab_kernelspec(kernel_name: str = "python3") -> dict[str, str]:
    """The ``kernelspec`` JupyterLab writes for ``kernel_name``, so that an executed notebook opens unmodified.

    On opening, JupyterLab sets ``kernelspec`` to its kernel's ``name``,
    ``display_name`` and ``language`` (e.g. ``"Python 3 (ipykernel)"``) and
    ``language_info`` to what the kernel reports; a notebook whose metadata
    differs opens as modified. papermill keeps the source notebook's
    ``kernelspec``; ``language_info`` is already the kernel's.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(kernel_name)
    return {"display_name": spec.display_name, "language": spec.language, "name": kernel_name}


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute(plan: RunPlan, progress_bar: bool | None = None, sign: bool = True) -> Path:
    """Execute (or only parameterise) the notebooks of a validated :class:`RunPlan`.

    Prints one line when each notebook starts and one when it ends; with
    ``progress_bar`` (default: when stderr is a terminal) papermill's cell
    progress bar runs in between. The kernels get ``EMOVAE_PROJECT_DIR`` (so
    the notebooks' relative paths are resolved against the project) and run
    in ``notebooks/``.
    """
    papermill = require("papermill", "study", "running the study's notebooks")

    if progress_bar is None:
        progress_bar = sys.stderr.isatty()
    out = plan.output_dir
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "run_log.csv"
    n = len(plan.notebooks)
    with _environ(EMOVAE_PROJECT_DIR=str(plan.project)):
        for i, (nb, params) in enumerate(plan.notebooks, 1):
            target = out / nb.name
            if not plan.prepare_only:
                print(f"[{i}/{n}] {nb.name}: running (preset {plan.preset_name}) -> {target}", flush=True)
            started = dt.datetime.now().isoformat(timespec="seconds")
            t0 = time.perf_counter()
            status = "prepared" if plan.prepare_only else "ok"
            written = True
            try:
                _execute_notebook(nb, target, params, plan.prepare_only, progress_bar)
            except BaseException as err:  # noqa: BLE001 - log, then re-raise
                status = f"failed: {type(err).__name__}"
                written = isinstance(err, papermill.PapermillExecutionError)  # complete, with the failing cell
                err.add_note(f"{nb.name} failed; the executed notebook, with the failing cell's output, is {target}"
                             if written else f"{nb.name} failed, {target} was not written (no partial file is left)")
                raise
            finally:
                seconds = time.perf_counter() - t0
                _update_log(log_path, {"notebook": nb.name, "preset": plan.preset_name, "started": started,
                                       "seconds": f"{seconds:.1f}", "status": status})
                if sign and written and not plan.prepare_only and target.exists():
                    try:
                        sign_notebook(target)
                    except Exception as err:  # noqa: BLE001 - an unsigned notebook is still a result
                        warnings.warn(f"Could not sign {target} ({err}); trust it in JupyterLab by hand.", stacklevel=2)
                where = f" -> {target}" if plan.prepare_only else ""
                print(f"[{i}/{n}] {nb.name}: {status} in {seconds:.1f} s{where}", flush=True)
    return out


def run(options: RunOptions | None = None, progress_bar: bool | None = None, sign: bool = True) -> Path:
    """Execute (or only parameterise) the notebooks with one preset.

    Every option is validated (:func:`plan_run`) before anything is written.

    Parameters
    ----------
    options : RunOptions, optional
        Preset, notebooks, folders, overrides; default ``RunOptions()``, every
        notebook with the paper preset.
    progress_bar : bool, optional
        papermill's cell progress bar; default when stderr is a terminal.
    sign : bool
        Sign executed notebooks (trusted in JupyterLab on this machine).

    Returns
    -------
    pathlib.Path
        The output folder, holding the notebooks and ``run_log.csv``.

    Examples
    --------
    ``run(RunOptions("smoke", only=["02"]))`` runs notebook 02 on the smoke preset into ``runs/smoke/``;
    ``prepare_only`` writes the parametrised notebook without running it:

    >>> import tempfile
    >>> out = run(RunOptions("smoke", only=["02"], output_dir=tempfile.mkdtemp(), prepare_only=True))
    [1/1] 02_train_single_actor.ipynb: prepared ...
    >>> sorted(p.name for p in out.iterdir())
    ['02_train_single_actor.ipynb', 'run_log.csv']
    """
    return execute(plan_run(options), progress_bar=progress_bar, sign=sign)


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
    nbformat = require("nbformat", "study", "running the study's notebooks")

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


DESCRIPTION = """\
Run the study's notebooks (notebooks/NN_*.ipynb of the project folder) in order with papermill.

Without options this runs the paper preset: every notebook with the study's settings, writing
its figures into the committed figures/ folder and its models into models/. The committed paper
run took, by its figures/run_log.csv (in all; then notebook by notebook):
  {paper_time}.
The smoke preset (--preset smoke) runs a few actors and epochs and writes its figures to
runs/smoke/figures/, never into figures/. Before any notebook runs, the runner checks that
RAVDESS is where the notebooks look (see `emovae download` and EMOVAE_DATA_DIR).

Executed notebooks and run_log.csv (one row per notebook; a rerun replaces the rows of the
notebooks it runs) go to <project>/runs/<preset>/. They are signed (trusted in JupyterLab on
this machine), so their audio players work. Nothing is written before all arguments are checked.
Paths given on the command line are relative to the current directory; paths in the presets
file are relative to the project folder.
"""

def _duration(seconds: float) -> str:
    """``"16 s"``, ``"9 min"``, ``"1 h 31 min"``."""
    minutes = round(seconds / 60)
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def paper_run_time(project_dir: str | Path | None = None) -> str:
    """How long the committed paper run took, from ``<project>/figures/run_log.csv``.

    Returns
    -------
    str
        E.g. ``"1 h 31 min in all; 01 16 s, 02 9 min, ..."`` (the notebooks' wall
        times and their sum), or why it is not known.
    """
    try:
        with open(find_project(project_dir) / "figures" / "run_log.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("preset") == DEFAULT_PRESET]
        seconds = [float(r["seconds"]) for r in rows]
    except (OSError, KeyError, ValueError):
        return "a time not known here: no readable figures/run_log.csv"
    if not rows:
        return "a time not known here: figures/run_log.csv has no paper rows"
    parts = ", ".join(f"{r['notebook'][:2]} {_duration(t)}" for r, t in zip(rows, seconds))
    return f"{_duration(sum(seconds))} in all; {parts}"


def describe(project_dir: str | Path | None = None) -> str:
    """The runner's ``--help`` description, with the paper run's times (:func:`paper_run_time`)."""
    return DESCRIPTION.format(paper_time=paper_run_time(project_dir))


EPILOG = """\
examples:
  %(prog)s --preset smoke --only 01 02
  %(prog)s --preset smoke -p epochs 10 -p figures_dir my_figures
  %(prog)s --presets my_presets.yaml --preset mine --output-dir my_runs
"""


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the runner's options to ``parser`` (shared by ``python -m emovae_utils.pipeline`` and ``emovae run``)."""
    parser.add_argument("--preset", default=DEFAULT_PRESET, metavar="NAME",
                        help=f"preset of the presets file (default: {DEFAULT_PRESET}, the study's settings, which "
                             "writes figures into the committed figures/; smoke: a quick run into runs/smoke/)")
    parser.add_argument("--only", nargs="+", metavar="NN",
                        help="run only these notebooks, by number or stem, e.g. --only 01 02 (default: all, in order)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), dest="parameters",
                        help="override a parameter for every selected notebook that declares it; VALUE is parsed as "
                             "YAML (10, 1e-3, null, true, [1, 3]); a *_dir, *_file or *_path value is relative to the "
                             "current directory; repeatable (default: none)")
    parser.add_argument("--presets", metavar="FILE",
                        help="presets file (default: <project>/notebooks/presets.yaml)")
    parser.add_argument("--output-dir", metavar="DIR",
                        help="where executed notebooks and run_log.csv go (default: <project>/runs/<preset>)")
    parser.add_argument("--project", metavar="DIR",
                        help="project folder holding notebooks/ (default: $EMOVAE_PROJECT_DIR, else the current "
                             "directory or its nearest parent with notebooks/NN_*.ipynb, else this package's checkout)")
    parser.add_argument("--prepare-only", action="store_true",
                        help="inject parameters without executing (default: execute)")
    parser.add_argument("--refresh-checks", action="store_true",
                        help="after running, copy NBVAL_CHECK_OUTPUT outputs into the source notebooks (default: off)")
    bar = parser.add_mutually_exclusive_group()
    bar.add_argument("--progress-bar", dest="progress_bar", action="store_true", default=None,
                     help="show papermill's cell progress bar (default: when stderr is a terminal)")
    bar.add_argument("--no-progress-bar", dest="progress_bar", action="store_false")
    parser.add_argument("--no-sign", dest="sign", action="store_false",
                        help="do not sign executed notebooks (default: sign, so JupyterLab trusts them)")
    return parser


def run_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run with parsed command-line arguments; argument errors exit with status 2 before anything is written."""
    try:
        plan = plan_run(RunOptions(args.preset, args.only, args.output_dir, args.prepare_only, args.presets,
                                   cli_parameters(args.parameters), args.project))
        papermill = require("papermill", "study", "running the study's notebooks")
    except KeyError as err:
        parser.error(str(err.args[0]))
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    except ImportError as err:  # the library install, without the [study] extra
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        out = execute(plan, progress_bar=args.progress_bar, sign=args.sign)
    except papermill.PapermillExecutionError as err:
        print("\n".join([str(err), *getattr(err, "__notes__", [])]), file=sys.stderr)
        return 1
    except OSError as err:  # e.g. a full disk: one line, no traceback
        notes = getattr(err, "__notes__", []) or ([f"while writing {err.filename}"] if err.filename else [])
        print(f"{parser.prog}: {err.strerror or err}: {' '.join(notes)}. Free some space or choose another "
              "--output-dir.", file=sys.stderr)
        return 1
    if args.refresh_checks and not args.prepare_only:
        for nb, _ in plan.notebooks:
            print(f"{nb.name}: {copy_checked_outputs(out / nb.name, nb)} checked output(s) refreshed")
    print(f"Notebooks and run_log.csv in {out}")
    return 0


def make_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The runner's argument parser."""
    parser = argparse.ArgumentParser(prog=prog, description=describe(), epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_arguments(parser)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``python -m emovae_utils.pipeline``; ``emovae run`` is the same)."""
    parser = make_parser("python -m emovae_utils.pipeline")
    return run_from_args(parser.parse_args(argv), parser)


if __name__ == "__main__":
    sys.exit(main())
