"""The papermill runner, the presets and the notebooks' shape."""

from __future__ import annotations

import json
import os

import nbformat
import pytest
import yaml

from emovae_utils import pipeline


def test_every_notebook_has_one_parameters_cell_and_reads_like_a_report():
    notebooks = pipeline.select_notebooks()
    assert notebooks[0].name == "01_preprocess.ipynb"
    for nb_path in notebooks:
        nb = nbformat.read(nb_path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, nb_path.name
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
        assert nb.metadata.kernelspec.name == "python3"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(len(c.source.splitlines()) <= 25 for c in code), f"{nb_path.name}: long code cell"
        # committed without outputs, except the expectations checked by nbval
        assert all(not c.outputs for c in code if "NBVAL_CHECK_OUTPUT" not in c.source), nb_path.name
        assert any(c.outputs for c in code if "NBVAL_CHECK_OUTPUT" in c.source), nb_path.name


def test_papermill_sees_every_parameter():
    # papermill silently skips an assignment it cannot parse (e.g. "=" inside its comment)
    import ast

    import papermill

    for nb_path in pipeline.select_notebooks():
        nb = nbformat.read(nb_path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assigned = {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
        assert assigned == set(papermill.inspect_notebook(str(nb_path))), nb_path.name


def test_presets_cover_every_notebook_with_declared_parameters():
    presets = pipeline.load_presets()
    assert {"paper", "smoke"} <= set(presets)
    for name in ("paper", "smoke"):
        for nb in pipeline.select_notebooks():
            params = pipeline.notebook_parameters(nb, presets[name])
            assert params.get("figures_dir"), (name, nb.name)
    assert presets["paper"]["_all"]["figures_dir"] == "figures"
    assert presets["smoke"]["_all"]["figures_dir"] != "figures"  # smoke never overwrites the report's figures


def test_unknown_preset_parameter_is_an_error(tmp_path):
    nb = pipeline.select_notebooks(["01"])[0]
    with pytest.raises(ValueError, match="not_a_parameter"):
        pipeline.notebook_parameters(nb, {"01_preprocess": {"not_a_parameter": 1}})


def test_prepare_only_injects_parameters_keeps_checked_outputs_and_logs(tmp_path):
    presets = tmp_path / "presets.yaml"
    presets.write_text(yaml.safe_dump({"x": {"_all": {"figures_dir": "elsewhere", "unused": 3},
                                             "01_preprocess": {"example_actor": 2}}}))
    out = pipeline.run(pipeline.RunOptions("x", only=["01"], output_dir=tmp_path / "out", prepare_only=True,
                                             presets_file=presets))
    nb = nbformat.read(out / "01_preprocess.ipynb", as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "example_actor = 2" in injected.source and 'figures_dir = "elsewhere"' in injected.source
    assert "unused" not in injected.source
    checked = [c for c in nb.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]
    assert checked and all(c.outputs for c in checked)
    log = (out / "run_log.csv").read_text().splitlines()
    assert log[0] == "notebook,preset,started,seconds,status" and log[1].startswith("01_preprocess.ipynb,x,")
    with pytest.raises(KeyError, match="nope"):
        pipeline.run(pipeline.RunOptions("nope", presets_file=presets, output_dir=tmp_path / "o2"))


def test_copy_checked_outputs_updates_only_checked_cells(tmp_path):
    src = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)"),
                                          nbformat.v4.new_code_cell("print(2)")])
    done = json.loads(json.dumps(src))
    done = nbformat.from_dict(done)
    for c in done.cells:
        c.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x\n")]
    nbformat.write(src, tmp_path / "src.ipynb")
    nbformat.write(done, tmp_path / "done.ipynb")
    assert pipeline.copy_checked_outputs(tmp_path / "done.ipynb", tmp_path / "src.ipynb") == 1
    back = nbformat.read(tmp_path / "src.ipynb", as_version=4)
    assert back.cells[0].outputs[0].text == "x\n" and back.cells[1].outputs == []


# --- the runner's command line (issue 11 items 8 and 12, issue 12 item 7), on throwaway notebooks ---

def _notebook(source: str, *cells: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# tiny"),
                                         nbformat.v4.new_code_cell(source, metadata={"tags": ["parameters"]}),
                                         *(nbformat.v4.new_code_cell(c) for c in cells)])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.fixture
def tiny_project(tmp_path):
    """A project folder with two notebooks, a presets file and an existing run log."""
    root = tmp_path / "proj"
    (root / "notebooks").mkdir(parents=True)
    nbformat.write(_notebook("x = 1\nout_dir = 'here'\n",
                             "import os\nfrom emovae_utils.paths import PROJECT_ROOT\n"
                             "print(os.environ['EMOVAE_PROJECT_DIR'], PROJECT_ROOT, os.getcwd(), x, sep='|')",
                             "from IPython.display import HTML\nHTML('<b>trusted?</b>')"),
                   root / "notebooks" / "01_first.ipynb")
    nbformat.write(_notebook("y = 2\n", "raise RuntimeError(f'boom {y}')"), root / "notebooks" / "02_second.ipynb")
    (root / "notebooks" / "presets.yaml").write_text(
        yaml.safe_dump({"t": {"_all": {"x": 5, "unused": 0}, "02_second": {"y": 3}}}))
    log = root / "runs" / "t" / "run_log.csv"
    log.parent.mkdir(parents=True)
    log.write_text("notebook,preset,started,seconds,status\n00_old.ipynb,t,2020-01-01T00:00:00,9.0,ok\n"
                   "01_first.ipynb,t,2020-01-01T00:00:00,1.0,ok\n")
    return root


def _injected(path) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))


def test_help_states_the_default_preset_and_where_outputs_go(capsys):
    with pytest.raises(SystemExit) as exit_:
        pipeline.main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "default: paper" in text and "committed figures/" in text
    assert "runs/<preset>" in text and "run_log.csv" in text and "-p NAME VALUE" in text and "--presets FILE" in text
    assert "relative to the current directory" in text


@pytest.mark.parametrize("args, fragment", [
    (["--only", "9"], "--only 9: no such notebook"),
    (["--only", "01", "6"], "--only 6"),
    (["--preset", "nope"], "Unknown preset 'nope'"),
    (["-p", "not_declared", "1"], "-p not_declared: no selected notebook declares it"),
    (["--only", "01", "-p", "y", "4"], "-p y"),  # y is declared by 02 only
    (["--presets", "missing.yaml"], "missing.yaml not found"),
    (["-p", "x", "[1, 2"], "not valid YAML"),
])
def test_bad_arguments_exit_before_anything_is_written(tiny_project, monkeypatch, capsys, args, fragment):
    monkeypatch.chdir(tiny_project.parent)
    log = tiny_project / "runs" / "t" / "run_log.csv"
    before = log.read_text()
    with pytest.raises(SystemExit) as exit_:
        pipeline.main(["--project", str(tiny_project), "--preset", "t", *args])
    assert exit_.value.code == 2
    assert fragment in " ".join(capsys.readouterr().err.split())
    assert log.read_text() == before
    assert sorted(p.name for p in log.parent.iterdir()) == ["run_log.csv"]
    with pytest.raises(SystemExit):  # nor is a new output folder created
        pipeline.main(["--project", str(tiny_project), "--preset", "t", "--output-dir", "fresh", *args])
    assert not (tiny_project.parent / "fresh").exists()


def test_only_typo_on_the_real_presets_is_an_error_before_any_write():
    with pytest.raises(ValueError, match="--only 9: no such notebook.*01 \\(01_preprocess\\)"):
        pipeline.plan_run(pipeline.RunOptions("paper", only=["9"]))
    assert [p.name for p in pipeline.select_notebooks(["2", "03_generate"])] == [
        "02_train_single_actor.ipynb", "03_generate.ipynb"]


def test_log_rows_are_replaced_per_notebook_not_truncated(tiny_project):
    log = tiny_project / "runs" / "t" / "run_log.csv"
    pipeline.run(pipeline.RunOptions("t", only=["02"], prepare_only=True, project_dir=tiny_project))
    rows = log.read_text().splitlines()
    assert rows[0] == "notebook,preset,started,seconds,status"
    assert [r.split(",")[0] for r in rows[1:]] == ["00_old.ipynb", "01_first.ipynb", "02_second.ipynb"]
    assert rows[2].endswith(",1.0,ok") and rows[3].endswith(",prepared")
    pipeline.run(pipeline.RunOptions("t", only=["01"], prepare_only=True, project_dir=tiny_project))
    rows = log.read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["00_old.ipynb", "01_first.ipynb", "02_second.ipynb"]
    assert rows[2].endswith(",prepared") and not rows[2].startswith("01_first.ipynb,t,2020")


def test_p_overrides_parse_yaml_and_command_line_paths_are_relative_to_the_current_directory(
        tiny_project, tmp_path, monkeypatch, capsys):
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    (cwd / "mine.yaml").write_text(yaml.safe_dump({"m": {"_all": {"x": 7}}}))
    code = pipeline.main(["--project", str(tiny_project), "--presets", "mine.yaml", "--preset", "m",
                          "-p", "y", "[1, 2]", "-p", "out_dir", "figs", "-p", "x", "1e-3",
                          "--prepare-only", "--output-dir", "outs"])
    assert code == 0
    first, second = _injected(cwd / "outs" / "01_first.ipynb"), _injected(cwd / "outs" / "02_second.ipynb")
    assert f'out_dir = "{cwd / "figs"}"' in first and "x = 0.001" in first and "y =" not in first
    assert "y = [1, 2]" in second and "out_dir" not in second and "x =" not in second
    assert (cwd / "outs" / "run_log.csv").is_file() and not (tiny_project / "runs" / "m").exists()
    out = capsys.readouterr().out
    assert "[1/2] 01_first.ipynb: prepared in" in out and "[2/2] 02_second.ipynb: prepared in" in out
    assert pipeline.cli_parameters([("data_dir", "/abs/x"), ("models_dir", "null"), ("epochs", "10")], cwd) == {
        "data_dir": "/abs/x", "models_dir": None, "epochs": 10}


def test_project_folder_is_required_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("EMOVAE_PROJECT_DIR", raising=False)
    with pytest.raises(pipeline.ProjectNotFoundError, match="clone of the emovae repository"):
        pipeline.find_project(tmp_path)
    monkeypatch.setenv("EMOVAE_PROJECT_DIR", str(tmp_path))
    with pytest.raises(pipeline.ProjectNotFoundError, match="EMOVAE_PROJECT_DIR"):
        pipeline.find_project()
    from emovae_utils import paths

    assert paths._project_root() == tmp_path.resolve()


def test_executed_notebooks_are_signed_logged_and_report_progress(tiny_project, tmp_path, monkeypatch, capsys):
    # One run of two notebooks: 01 succeeds, 02 raises. Signatures go to a throwaway Jupyter data dir.
    from nbformat.sign import NotebookNotary

    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    monkeypatch.chdir(tmp_path)
    code = pipeline.main(["--project", str(tiny_project), "--preset", "t", "--no-progress-bar"])
    assert code == 1
    captured = capsys.readouterr()
    out_dir = tiny_project / "runs" / "t"
    assert "[1/2] 01_first.ipynb: running (preset t)" in captured.out and "[1/2] 01_first.ipynb: ok in" in captured.out
    assert "[2/2] 02_second.ipynb: failed: PapermillExecutionError in" in captured.out
    assert "boom 3" in captured.err and f"the failing cell's output, is {out_dir / '02_second.ipynb'}" in captured.err
    rows = (out_dir / "run_log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["00_old.ipynb", "01_first.ipynb", "02_second.ipynb"]
    assert rows[2].endswith(",ok") and rows[3].endswith(",failed: PapermillExecutionError")

    done = nbformat.read(out_dir / "01_first.ipynb", as_version=4)
    assert done.metadata.papermill.output_path == str(out_dir / "01_first.ipynb")  # not the temporary name
    assert sorted(p.name for p in out_dir.iterdir()) == ["01_first.ipynb", "02_second.ipynb", "run_log.csv"]
    printed = done.cells[3].outputs[0].text.strip().split("|")  # cells: markdown, parameters, injected, print
    assert printed == [str(tiny_project), str(tiny_project), str(tiny_project / "notebooks"), "5"]
    with NotebookNotary() as notary:
        assert notary.check_signature(done)  # JupyterLab shows its HTML and audio
        assert notary.check_signature(nbformat.read(out_dir / "02_second.ipynb", as_version=4))
        done.cells[4].outputs[0].data["text/html"] = "<b>changed</b>"
        assert not notary.check_signature(done)


# --- a newcomer's mistakes (issue "Nothing surprises a newcomer", item 12) ---

def test_help_states_the_paper_run_times_of_the_committed_run_log(capsys):
    import csv

    with open(pipeline.find_project() / "figures" / "run_log.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["preset"] == "paper"]
    total = round(sum(float(r["seconds"]) for r in rows) / 60)  # minutes
    with pytest.raises(SystemExit):
        pipeline.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "about 15 minutes" not in text and "figures/run_log.csv" in text
    assert f"{total // 60} h {total % 60:02d} min in all" in text
    for r in rows:
        minutes = round(float(r["seconds"]) / 60)
        assert f"{r['notebook'][:2]} {minutes} min" in text or float(r["seconds"]) < 60, r


def _with_data_dir_parameter(project):
    nbformat.write(_notebook("data_dir = None\n", "print(data_dir)"), project / "notebooks" / "01_first.ipynb")


@pytest.mark.parametrize("where", ["env", "default", "parameter"])
def test_no_data_is_an_error_before_any_notebook_runs(tiny_project, tmp_path, monkeypatch, capsys, where):
    _with_data_dir_parameter(tiny_project)
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["--project", str(tiny_project), "--preset", "t", "--output-dir", "out"]
    if where == "env":
        monkeypatch.setenv("EMOVAE_DATA_DIR", str(empty))
    else:
        monkeypatch.delenv("EMOVAE_DATA_DIR", raising=False)
    if where == "parameter":
        args += ["-p", "data_dir", "empty"]
    with pytest.raises(SystemExit) as exit_:
        pipeline.main(args)
    assert exit_.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    folder = tiny_project / "data" / "ravdess" if where == "default" else empty
    assert f"01_first.ipynb reads RAVDESS from {folder}" in err and "holds no RAVDESS clips" in err
    assert "`emovae download" in err and "EMOVAE_DATA_DIR" in err and "Nothing was run" in err
    assert (f"`emovae download {empty}`" in err) == (where == "parameter")
    assert not (tmp_path / "out").exists()
    # prepare-only runs no notebook, so it needs no data
    assert pipeline.main([*args, "--prepare-only"]) == 0


@pytest.mark.parametrize("text, fragments", [
    ("t:\n  _all: {x: 1\n  02_second: {y: 3}\n", ["presets.yaml, line 3: not valid YAML"]),
    ("t:\n  _all:\n    x: 1\n   y: 2\n", ["presets.yaml, line 4: not valid YAML"]),
    ("t: [1, 2]\n", ["presets.yaml, line 1: preset 't' must be a mapping of sections", "not a list"]),
    ("t:\n  _all: {x: 1}\n  02_second: 3\n",
     ["presets.yaml, line 3: section '02_second' of preset 't'", "not the value '3'"]),
    ("", ["presets.yaml: holds no presets"]),
    ("t:\n  _all: {x: \xff}\n".encode("latin-1"), ["presets.yaml: not a YAML text file (byte 15 is not UTF-8)"]),
])
def test_a_broken_presets_file_is_one_line_naming_file_and_line(tiny_project, monkeypatch, capsys, text, fragments):
    presets = tiny_project / "notebooks" / "presets.yaml"
    presets.write_bytes(text) if isinstance(text, bytes) else presets.write_text(text)
    monkeypatch.chdir(tiny_project)
    with pytest.raises(SystemExit) as exit_:
        pipeline.main(["--project", str(tiny_project), "--preset", "t", "--prepare-only"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [ln for ln in err.splitlines() if "error:" in ln]
    for fragment in fragments:
        assert fragment in line, line


@pytest.mark.parametrize("how", ["a-file", "under-a-file", "read-only"])
def test_an_output_dir_that_cannot_be_written_is_an_argument_error(tiny_project, tmp_path, monkeypatch, capsys, how):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").write_text("a file")
    out = {"a-file": "taken", "under-a-file": "taken/sub", "read-only": "locked/sub"}[how]
    if how == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        (tmp_path / "locked").mkdir(mode=0o555)
    with pytest.raises(SystemExit) as exit_:
        pipeline.main(["--project", str(tiny_project), "--preset", "t", "--prepare-only", "--output-dir", out])
    assert exit_.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"--output-dir {tmp_path / out}" in err
    assert ("cannot write into" if how == "read-only" else "is a file, not a folder") in err


def test_a_full_disk_leaves_no_partial_notebook_nor_temporary_file(tiny_project, tmp_path, monkeypatch, capsys):
    import errno

    import papermill

    out = tiny_project / "runs" / "t"
    (out / "01_first.ipynb").write_text("the previous, complete run")

    def full_disk(input_path, output_path, **kw):
        with open(output_path, "w") as f:
            f.write('{"cells": [')  # what a write cut short leaves
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), output_path)

    monkeypatch.setattr(papermill, "execute_notebook", full_disk)
    real_atomic_write = pipeline.atomic_write

    def log_also_fails(path, write):
        if path.name != "run_log.csv":
            return real_atomic_write(path, write)

        def partial(tmp):
            tmp.write_text("notebook,pre")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
        return real_atomic_write(path, partial)

    for atomic_write in (real_atomic_write, log_also_fails):
        monkeypatch.setattr(pipeline, "atomic_write", atomic_write)
        log_before = (out / "run_log.csv").read_text()
        code = pipeline.main(["--project", str(tiny_project), "--preset", "t", "--only", "01", "--no-sign"])
        assert code == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err and "No space left on device" in err
        assert (out / "01_first.ipynb").read_text() == "the previous, complete run"
        assert sorted(p.name for p in out.iterdir()) == ["01_first.ipynb", "run_log.csv"]  # no temporary file
        log = (out / "run_log.csv").read_text()
        if atomic_write is real_atomic_write:
            assert log.splitlines()[2].startswith("01_first.ipynb,t,") and log.endswith(",failed: OSError\n")
        else:
            assert log == log_before  # the failed log write left the old log whole
