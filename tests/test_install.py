"""The package as a user gets it: metadata, the ``emovae`` command, and a wheel installed outside the repository.

The wheel test builds ``emovae`` from a copy of the source and installs it the way the README's
"Use it in your own project" says a CPU machine should: ``pip install -c requirements.txt <wheel>``, no
extras, into a fresh virtual environment in ``tmp_path`` (the pip cache and the configured indexes are
reused, so it runs offline like CI; the constraints file makes torch the pinned CPU build). It measures
that environment with ``du`` (at most 1.5 GB: the library, not the study's Jupyter stack nor CUDA), and
from another directory imports every module, builds a model, preprocesses a RAVDESS clip and runs
``emovae --help``; then it adds the ``[study]`` extra and prepares a notebook with ``emovae run``.
About 1 minute on 2 cores with a warm pip cache (marked ``slow``; ``make test`` runs it; each pip call
has a 30-minute limit). Set ``EMOVAE_SKIP_INSTALL_TEST=1`` to skip it locally.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

from emovae_utils import cli, pipeline

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pins() -> dict[str, str]:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            pins[canonicalize_name(req.name)] = next(iter(req.specifier)).version
    return pins


# --- metadata and the command, in this environment (fast) ---

def test_dependencies_are_ranges_that_hold_the_pinned_versions():
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = PYPROJECT["project"]
    pins = _pins()
    deps = [Requirement(d) for d in project["dependencies"]]
    assert {"torch", "librosa", "numpy", "pyyaml"} <= {canonicalize_name(r.name) for r in deps}
    study = {"papermill", "nbformat", "ipykernel", "opensmile", "jupyterlab"}  # the notebooks', not the library's
    assert not study & {canonicalize_name(r.name) for r in deps}
    assert study <= {canonicalize_name(Requirement(r).name) for r in project["optional-dependencies"]["study"]}
    for extra in ("test", "bench", "cluster", "study"):
        assert project["optional-dependencies"][extra], extra
    assert {"pytest", "nbval", "playwright"} <= {Requirement(r).name for r in project["optional-dependencies"]["test"]}
    for req in deps + [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]:
        name = canonicalize_name(req.name)
        assert req.specifier, f"{req.name}: give a range (exact pins belong in requirements.txt)"
        assert not any(s.operator == "==" for s in req.specifier), f"{req.name} is pinned in pyproject.toml"
        if name in pins:
            assert req.specifier.contains(pins[name], prereleases=True), f"{req}: excludes the pinned {pins[name]}"
    assert Requirement(next(d for d in project["dependencies"] if d.startswith("torch"))).specifier.contains("2.13.0")
    assert project["scripts"]["emovae"] == "emovae_utils.cli:main" and project["version"]


def _imports(nodes) -> set[str]:
    import ast

    used = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            used |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            used.add(node.module.split(".")[0])
    return used


def test_every_import_of_the_package_is_a_declared_dependency():
    # Imports at a module's top level come from the standard library, the package or [project] dependencies;
    # an extra's package (ray, papermill, ...) only inside functions, or through extras.require, which names
    # the extra to install.
    import ast

    def provided(requirements) -> set[str]:
        names = {re.split(r"[<>=!~ ;\[]", d)[0].lower().replace("-", "_") for d in requirements}
        import_names = {"pyyaml": "yaml", "scikit_learn": "sklearn", "webrtcvad_wheels": "webrtcvad",
                        "ipython": "IPython"}
        return {import_names.get(d, d) for d in names}

    core = provided(PYPROJECT["project"]["dependencies"])
    extras = provided(r for reqs in PYPROJECT["project"]["optional-dependencies"].values() for r in reqs)
    top, anywhere = set(), set()
    for path in (ROOT / "emovae_utils").rglob("*.py"):
        tree = ast.parse(path.read_text())
        body = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        top |= _imports(n for stmt in body for n in ast.walk(stmt))
        anywhere |= _imports(ast.walk(tree))

    def unknown(names, allowed):
        return sorted(m for m in names - allowed - {"emovae_utils"} if m not in sys.stdlib_module_names)

    assert not unknown(top, core), "imported at the top of emovae_utils modules but not in [project] dependencies"
    assert not unknown(anywhere, core | extras), "imported by emovae_utils but declared nowhere"


@pytest.mark.parametrize("command, fragments", [
    ([], ["run", "download", "benchmark"]),
    (["run"], ["default: paper", "committed figures/", "-p NAME VALUE", "--presets FILE", "runs/<preset>"]),
    (["download"], ["default: $EMOVAE_DATA_DIR", "default: 30"]),
    (["benchmark"], ["benchmarks/NAME.py", "default: none"]),
])
def test_every_command_has_help_with_its_defaults(capsys, command, fragments):
    with pytest.raises(SystemExit) as exit_:
        cli.main([*command, "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for fragment in fragments:
        assert fragment in text, (command, fragment)


def test_run_command_is_the_pipeline_runner(tmp_path, monkeypatch, capsys):
    root = tmp_path / "proj" / "notebooks"
    root.mkdir(parents=True)
    import nbformat
    import yaml

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a = 1", metadata={"tags": ["parameters"]})])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "01_x.ipynb")
    (root / "presets.yaml").write_text(yaml.safe_dump({"paper": {"_all": {"a": 2}}}))
    monkeypatch.chdir(root)  # found from inside the project folder
    monkeypatch.delenv("EMOVAE_PROJECT_DIR", raising=False)
    assert cli.main(["run", "--prepare-only", "-p", "a", "3"]) == 0
    out = root.parent / "runs" / "paper" / "01_x.ipynb"
    assert "a = 3" in nbformat.read(out, as_version=4).cells[1].source
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "--only", "7"])
    assert exit_.value.code == 2 and "--only 7" in capsys.readouterr().err


def test_benchmark_command_runs_the_projects_script(tmp_path):
    bench = tmp_path / "proj" / "benchmarks"
    bench.mkdir(parents=True)
    (tmp_path / "proj" / "notebooks").mkdir()
    (tmp_path / "proj" / "notebooks" / "01_x.ipynb").write_text("{}")
    (bench / "echo.py").write_text("import sys, pathlib\npathlib.Path('argv.txt').write_text(' '.join(sys.argv[1:]))\n")
    assert cli.main(["benchmark", "--project", str(tmp_path / "proj"), "echo", "--epochs", "3"]) == 0
    assert (tmp_path / "proj" / "argv.txt").read_text() == "--epochs 3"


def test_download_command_defaults_to_the_data_dir_and_reports_errors(tmp_path, monkeypatch, capsys):
    from emovae_utils import download

    seen = {}

    def fake(dest, **kwargs):
        seen.update(dest=dest, **kwargs)
        raise download.DownloadError("no network; put the Actor_XX folders in DEST")

    monkeypatch.setattr(download, "download_ravdess", fake)
    monkeypatch.setenv("EMOVAE_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["download", "--timeout", "5"]) == 1
    assert seen == {"dest": tmp_path / "data", "keep_zip": False, "timeout": 5.0}
    assert "no network" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    cli.main(["download", "here"])
    assert seen["dest"] == tmp_path / "here"


# --- the wheel, installed into a fresh virtual environment outside the repository ---

def _run(cmd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


MAX_INSTALL_BYTES = 1.5e9  # the documented CPU install of the library, no extras


def _pip_install(venv: Path, *targets: str, env: dict, cwd: Path) -> float:
    """``pip install -c requirements.txt TARGETS`` into ``venv`` (as the README says); returns the seconds it took."""
    t0 = time.perf_counter()
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-compile", "--quiet",
          "-c", str(ROOT / "requirements.txt"), *targets], env=env, cwd=cwd, timeout=1800)
    return time.perf_counter() - t0


def _disk_usage(path: Path) -> int:
    """Bytes ``path`` takes on disk, as ``du`` counts them."""
    return int(_run(["du", "-s", "--block-size=1", str(path)]).stdout.split()[0])


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin folder, a working directory outside the repository, clean environment, facts of the install)."""
    if os.environ.get("EMOVAE_SKIP_INSTALL_TEST"):
        pytest.skip("EMOVAE_SKIP_INSTALL_TEST is set")
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"  # a copy, so the build writes nothing into the repository
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "emovae_utils", src / "emovae_utils", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    t0 = time.perf_counter()
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
          "--wheel-dir", str(tmp / "dist"), str(src)], cwd=tmp)
    wheel = next((tmp / "dist").glob("emovae-*.whl"))
    built = time.perf_counter() - t0

    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {p.relative_to(src).as_posix() for p in (src / "emovae_utils").rglob("*")
                if p.is_file() and p.suffix in {".py", ".yaml", ".json", ".c", ".cpp", ".cu", ".h", ".js", ".css"}}
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"

    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "EMOVAE_PROJECT_DIR", "VIRTUAL_ENV"}}
    env.update(OMP_NUM_THREADS="1", PYTHONNOUSERSITE="1")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], env=env)
    installed_s = _pip_install(venv, str(wheel), env=env, cwd=tmp)
    _run([str(venv / "bin" / "python"), "-m", "pip", "check"], env=env, cwd=tmp)
    listed = _run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"], env=env, cwd=tmp).stdout
    facts = {"bytes": _disk_usage(venv), "packages": dict(line.split("==", 1) for line in listed.split()),
             "wheel": wheel, "venv": venv}
    print(f"\nwheel built in {built:.1f} s; fresh venv with its dependencies in {installed_s:.1f} s, "
          f"{facts['bytes'] / 1e9:.2f} GB on disk")
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return venv / "bin", elsewhere, env, facts


@pytest.mark.slow
def test_cpu_install_of_the_library_is_small(installed):
    *_, facts = installed
    packages = {name.lower(): version for name, version in facts["packages"].items()}
    assert packages["torch"] == "2.13.0+cpu", packages["torch"]  # the pinned CPU build, not torch + CUDA
    assert not [name for name in packages if name.startswith(("nvidia", "cuda", "triton"))]
    assert not {"papermill", "nbformat", "ipykernel", "opensmile", "pyarrow", "jupyterlab", "nbval"} & set(packages)
    assert facts["bytes"] <= MAX_INSTALL_BYTES, f"{facts['bytes'] / 1e9:.2f} GB > {MAX_INSTALL_BYTES / 1e9} GB"


@pytest.mark.slow
def test_installed_wheel_imports_everything_and_builds_a_model(installed):
    bin_, cwd, env, _ = installed
    script = textwrap.dedent("""
        import importlib, pkgutil, sys
        import emovae_utils
        assert "site-packages" in emovae_utils.__file__ and sys.prefix in emovae_utils.__file__, emovae_utils.__file__
        names = [m.name for m in pkgutil.walk_packages(emovae_utils.__path__, "emovae_utils.")]
        for name in names:
            importlib.import_module(name)
        for sub in ("models", "metrics", "accel"):
            assert f"emovae_utils.{sub}" in names, sub
        from emovae_utils.models import build
        model = build("emotion_vae", latent_dim=8)
        print(type(model).__name__, model.latent_dim, len(names))
    """)
    t0 = time.perf_counter()
    out = _run([str(bin_ / "python"), "-c", script], cwd=cwd, env=env, timeout=600).stdout.split()
    assert out[:2] == ["EmotionVAE", "8"], out
    print(f"\nimported {out[2]} modules and built a model in {time.perf_counter() - t0:.1f} s")


@pytest.mark.slow
def test_installed_wheel_preprocesses_a_ravdess_clip(installed, ravdess_dir):
    bin_, cwd, env, _ = installed
    clip = next(p for p in sorted((ravdess_dir / "Actor_01").iterdir()) if p.suffix.lower() in {".wav", ".flac"})
    script = f"from emovae_utils.dsp import preprocess_file; print(preprocess_file({str(clip)!r}).shape)"
    assert _run([str(bin_ / "python"), "-c", script], cwd=cwd, env=env, timeout=600).stdout.strip() == "(80, 128)"


@pytest.mark.slow
def test_installed_command_helps_and_needs_a_project_folder_to_run(installed):
    bin_, cwd, env, _ = installed
    emovae = str(bin_ / "emovae")
    assert "run" in _run([emovae, "--help"], cwd=cwd, env=env).stdout
    assert PYPROJECT["project"]["version"] in _run([emovae, "--version"], cwd=cwd, env=env).stdout
    text = " ".join(_run([emovae, "run", "--help"], cwd=cwd, env=env).stdout.split())
    assert "default: paper" in text and "committed figures/" in text
    assert "default: $EMOVAE_DATA_DIR" in " ".join(_run([emovae, "download", "--help"], cwd=cwd, env=env).stdout.split())
    proc = subprocess.run([emovae, "run", "--preset", "smoke"], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "clone of the emovae repository" in proc.stderr, proc.stderr
    assert list(cwd.iterdir()) == []  # nothing written


@pytest.mark.slow
def test_the_runner_asks_for_the_study_extra_then_prepares_the_notebooks(installed):
    bin_, cwd, env, facts = installed
    emovae = str(bin_ / "emovae")
    prepare = [emovae, "run", "--project", str(ROOT), "--preset", "smoke", "--only", "01", "--prepare-only",
               "--output-dir", "out"]
    proc = subprocess.run(prepare, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and 'pip install "emovae[study]"' in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (cwd / "out").exists()
    seconds = _pip_install(facts["venv"], f"{facts['wheel']}[study]", env=env, cwd=cwd)
    print(f"\n[study] extra added in {seconds:.1f} s")
    # with a project folder (here, this repository's notebooks), the installed runner prepares them
    _run(prepare, cwd=cwd, env=env)
    assert (cwd / "out" / "01_preprocess.ipynb").is_file() and (cwd / "out" / "run_log.csv").is_file()


def test_readme_example_for_your_own_recordings_runs(ravdess_dir, tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use it in your own project", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert code.count("\n") <= 6 and "my_recordings" in code
    folder = tmp_path / "my_recordings" / "session 1"
    folder.mkdir(parents=True)
    clips = sorted(p for p in (ravdess_dir / "Actor_02").iterdir() if p.suffix.lower() in {".wav", ".flac"})[:4]
    for i, clip in enumerate(clips):
        shutil.copy(clip, folder / f"take {i}{clip.suffix}")  # not RAVDESS names
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code.replace("epochs=2000", "epochs=2, progress=False"), "README.md", "exec"), namespace)
    assert namespace["X"].shape == (4, 80, 128) and len(namespace["idx"]) == 4
    assert namespace["model"].latent_dim == 8
