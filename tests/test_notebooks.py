"""The notebooks run top to bottom against the demo run's lakehouse, each in its own kernel and Spark session."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("01_explore_profiles", "02_identity_qa", "03_train_and_compare_models")


def _code_cells(name: str) -> list:
    book = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    return [c for c in book.cells if c.cell_type == "code"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_holds_no_logic_and_no_outputs(name):
    """Notebooks call the library: no function, class or lambda definitions; committed without outputs."""
    defined = [
        f"{type(node).__name__} at cell {i}"
        for i, cell in enumerate(_code_cells(name))
        for node in ast.walk(ast.parse(cell.source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
    ]
    assert defined == []
    assert [c.outputs for c in _code_cells(name) if c.outputs] == []


@pytest.fixture(scope="module")
def notebook_config(demo_run, tmp_path_factory) -> Path:
    """The demo run's config with a small driver: every kernel starts its own local Spark session."""
    _, config_path, results = demo_run
    assert [r.status for r in results] == ["succeeded"] * len(results), [r.line() for r in results]
    path = tmp_path_factory.mktemp("notebooks") / "cdp.yaml"
    path.write_text(f"include: [{config_path}]\nspark: {{driver_memory: 1g, shuffle_partitions: 2, log_level: ERROR}}\n")
    return path


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_every_cell_without_error(name, notebook_config, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("CDP_CONFIG", str(notebook_config))  # inherited by the kernel
    book = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    client = NotebookClient(
        book, kernel_name="python3", timeout=600, startup_timeout=120, resources={"metadata": {"path": str(ROOT / "notebooks")}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on the first failing cell

    code = [c for c in book.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert [o for c in code for o in c.outputs if o.output_type == "error"] == []
