"""Executed notebooks as a reader opens them: clean in JupyterLab, no machine-specific paths, no error output."""

from __future__ import annotations

import json

import nbformat
import pytest
import yaml

from emovae_utils import pipeline

_TRAIN = """\
import numpy as np
from emovae_utils import experiments
from emovae_utils.paths import project_path, project_relative

X = np.random.default_rng(0).normal(size=(4, 80, 128)).astype("float32")
rows = experiments.run_trials(experiments.sweep("beta_vae", seeds=[0], epochs=1),
                              project_path(models_dir) / "trials", X, workers=1)
print(f"models in {project_relative(models_dir)}")
"""


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """A project whose one notebook trains a toy trial and prints where it went, executed by the runner."""
    root = tmp_path_factory.mktemp("saved") / "proj"
    (root / "notebooks").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}  # as committed
    nb.cells = [nbformat.v4.new_code_cell('models_dir = "models"', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(_TRAIN)]
    nbformat.write(nb, root / "notebooks" / "01_tiny.ipynb")
    (root / "notebooks" / "presets.yaml").write_text(yaml.safe_dump({"t": {"_all": {"models_dir": "runs/t/models"}}}))
    code = pipeline.main(["--project", str(root), "--preset", "t", "--no-progress-bar", "--no-sign"])
    assert code == 0
    return root, root / "runs" / "t" / "01_tiny.ipynb"


def test_metadata_is_what_jupyterlab_writes(executed):
    # JupyterLab sets kernelspec to {name, display_name, language} of its kernel and language_info to the
    # kernel's; anything else makes the notebook open as modified.
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager

    _, path = executed
    meta = nbformat.read(path, as_version=4).metadata
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert meta.kernelspec == {"name": "python3", "display_name": spec.display_name, "language": spec.language}
    assert meta.language_info == IPythonKernel.language_info


def test_outputs_hold_no_absolute_project_path_and_no_error_stream(executed):
    root, path = executed
    outputs = [o for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code" for o in c.outputs]
    text = json.dumps(outputs)
    assert "trials in runs/t/models/trials:" in text and "models in runs/t/models" in text
    assert str(root) not in text and str(root.resolve()) not in text
    assert [o for o in outputs if o.output_type == "stream" and o.name == "stderr"] == []
