"""The committed notebooks: no outputs, execution counts or widget state (``make strip-notebooks`` removes them), and
parameters that papermill can describe (``papermill --help-notebook``: a type and a help text for each)."""

import ast
from pathlib import Path

import nbformat
import papermill
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"train_clm.ipynb", "train_mlm.ipynb", "generate.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs; run `make strip-notebooks` before committing"
    assert "widgets" not in nb.metadata, f"{path.name} holds widget state; run `make strip-notebooks`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_have_types_and_help(path):
    params = papermill.inspect_notebook(str(path))
    assert params, f"{path.name} has no parameters cell"
    # papermill's inspector skips lines it cannot parse (e.g. `int | None`): every annotated name must be listed
    cell = next(c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    annotated = [node.target.id for node in ast.parse(cell.source).body if isinstance(node, ast.AnnAssign)]
    assert list(params) == annotated, f"{path.name}: papermill --help-notebook misses {set(annotated) - set(params)}"
    untyped = [name for name, p in params.items() if p["inferred_type_name"] in ("None", None)]
    assert not untyped, f"{path.name}: parameters without a type annotation: {untyped}"
    silent = [name for name, p in params.items() if not p["help"].strip()]
    assert not silent, f"{path.name}: parameters without a help comment: {silent}"
