"""The set-up shared by the notebooks in notebooks/: their first cell makes gan_zoo importable
(this checkout, or a clone installed on Colab), then calls `setup`. Imports nothing heavy: JAX
must not start before `setup` has set its flags."""

import os
import pathlib
import sys

TEST_ENV = "GAN_ZOO_NOTEBOOK_TEST"  # "1": test mode (tests/notebooks_test.py)
# XLA's cheapest CPU compile: test mode runs a few steps, so compile time is all that counts.
TEST_XLA_FLAGS = ("--xla_backend_optimization_level=0",
                  "--xla_llvm_disable_expensive_passes=true")


def setup(repo) -> bool:
    """Prepares this kernel to run a notebook of the checkout `repo`; returns test mode.

    Test mode (`$GAN_ZOO_NOTEBOOK_TEST=1`): the notebook shrinks its sizes and steps, and XLA
    compiles cheaply (the flags are added to `$XLA_FLAGS`, which must happen before JAX starts).
    The working directory becomes `repo` and `repo` goes first on `sys.path`: the configs/ files
    import each other as the `configs` package.
    """
    repo = pathlib.Path(repo).resolve()
    if not (repo / "configs").is_dir():
        raise FileNotFoundError(f"{repo}: not a gan_zoo checkout (no configs/ folder)")
    test = os.environ.get(TEST_ENV) == "1"
    if test:
        flags = os.environ.get("XLA_FLAGS", "").split()
        os.environ["XLA_FLAGS"] = " ".join(flags + [f for f in TEST_XLA_FLAGS if f not in flags])
    os.chdir(repo)
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    return test

