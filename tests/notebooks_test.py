"""notebooks/: every notebook runs top to bottom in test mode, and each .ipynb matches its
jupytext text pair (notebooks/X.py, percent format) cell for cell.

Test mode (GAN_ZOO_NOTEBOOK_TEST=1, read by gan_zoo.tools.notebook.setup in each notebook's first
code cell) shrinks sizes and steps and adds XLA's cheapest CPU compile to the inherited XLA_FLAGS
(the 8 host devices of tests/conftest.py stay); the released_models notebook then reads the
official files of ../shared/official (or $GAN_ZOO_OFFICIAL) instead of an upload.
"""

import json
import os
import sys

import pytest

from gan_zoo.tools import notebook
from tests.conftest import REPO

NOTEBOOKS = REPO / "notebooks"
NAMES = ("quickstart", "released_models", "library_tour", "stylegan_xl")
TIMEOUT_S = 600  # per cell; a notebook takes well under a minute on an idle 2-core box


def _cells(nb) -> list:
    """(type, source) of each code and markdown cell, trailing whitespace ignored."""
    return [(c.cell_type, c.source.rstrip()) for c in nb.cells
            if c.cell_type in ("code", "markdown")]


def test_the_notebook_folder_holds_exactly_the_paired_notebooks():
    found = {p.name for p in NOTEBOOKS.iterdir() if p.suffix in (".ipynb", ".py")}
    assert found == {f"{n}{ext}" for n in NAMES for ext in (".ipynb", ".py")}


@pytest.mark.parametrize("name", NAMES)
def test_ipynb_matches_its_text_pair_and_has_no_outputs(name):
    jupytext = pytest.importorskip("jupytext")
    ipynb = NOTEBOOKS / f"{name}.ipynb"
    nb = jupytext.read(ipynb)
    text = jupytext.read(NOTEBOOKS / f"{name}.py")
    assert _cells(nb) == _cells(text), f"{ipynb} and {name}.py differ: run " \
        f"`jupytext --sync notebooks/{name}.py`"
    raw = json.loads(ipynb.read_text())
    for cell in raw["cells"]:
        assert not cell.get("outputs") and cell.get("execution_count") is None, \
            f"{ipynb}: outputs must be stripped (README 'Notebooks')"
    link = f"https://colab.research.google.com/github/ORG/gan_zoo/blob/main/notebooks/{name}.ipynb"
    assert link in nb.cells[0].source, f"{ipynb}: the first cell must open with the Colab link"


def test_setup_adds_the_test_flags_once_and_enters_the_checkout(monkeypatch, tmp_path):
    monkeypatch.setenv(notebook.TEST_ENV, "1")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    monkeypatch.chdir(tmp_path)  # restored afterwards, as sys.path below
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(REPO)])
    assert notebook.setup(REPO) and notebook.setup(REPO)  # a rerun of the setup cell
    assert os.getcwd() == str(REPO) and sys.path[0] == str(REPO)
    flags = os.environ["XLA_FLAGS"].split()
    assert flags == ["--xla_force_host_platform_device_count=8", *notebook.TEST_XLA_FLAGS]
    monkeypatch.setenv(notebook.TEST_ENV, "0")
    monkeypatch.setenv("XLA_FLAGS", "")
    assert not notebook.setup(REPO) and os.environ["XLA_FLAGS"] == ""
    with pytest.raises(FileNotFoundError, match="no configs/ folder"):
        notebook.setup(tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom_in_test_mode(name, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    official = REPO.parent / "shared" / "official"
    monkeypatch.setenv("GAN_ZOO_NOTEBOOK_TEST", "1")
    monkeypatch.setenv("GAN_ZOO_OFFICIAL", os.environ.get("GAN_ZOO_OFFICIAL", str(official)))
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError naming the cell on any error
    pictures = [o for c in nb.cells for o in c.get("outputs", [])
                if "image/png" in o.get("data", {})]
    assert pictures, f"{name}: no picture was displayed"
