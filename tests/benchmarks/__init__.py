"""Tests of the scripts under benchmarks/ (not a package: loaded from their files)."""

import importlib.util

from tests.conftest import REPO


def load_script(name: str):
    """benchmarks/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
