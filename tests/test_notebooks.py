"""Every notebook in notebooks/ runs from top to bottom without an error.

Notebooks are committed with their outputs so they read well on GitHub; the
second test keeps that promise (re-run and save a notebook after editing it).
"""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.docs
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes_without_errors(path, tmp_path, monkeypatch):
    # The kernel is a child process: it inherits this environment, so it
    # imports the checkout under test and draws with a headless backend.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the failing cell


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_with_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert code_cells, f"{path.name} has no code"
    not_run = [i for i, c in enumerate(code_cells) if c.execution_count is None]
    assert not not_run, (
        f"{path.name}: code cells {not_run} have no stored output; execute "
        "the notebook and save it with its outputs")
    errors = [o for c in code_cells for o in c.outputs
              if o.output_type == "error"]
    assert not errors, f"{path.name} was saved with an error output"
