"""The papermill runner, the presets and the notebooks' shape."""

from __future__ import annotations

import json

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
    out = pipeline.run("x", only=["01"], output_dir=tmp_path / "out", prepare_only=True, presets_file=presets)
    nb = nbformat.read(out / "01_preprocess.ipynb", as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "example_actor = 2" in injected.source and 'figures_dir = "elsewhere"' in injected.source
    assert "unused" not in injected.source
    checked = [c for c in nb.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]
    assert checked and all(c.outputs for c in checked)
    log = (out / "run_log.csv").read_text().splitlines()
    assert log[0] == "notebook,preset,started,seconds,status" and log[1].startswith("01_preprocess.ipynb,x,")
    with pytest.raises(KeyError, match="nope"):
        pipeline.run("nope", presets_file=presets, output_dir=tmp_path / "o2")


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
