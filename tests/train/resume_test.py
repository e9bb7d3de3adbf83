"""Checkpoints: bit-identical resume, and a non-finite loss stops the run without a bad save."""

import shutil

import jax
import numpy as np
import pytest

from gan_zoo import train
from tests.train._tiny import tiny_config, tiny_networks


def _run(config, workdir, stop_after=0):
    return train.run(config, str(workdir), networks=tiny_networks(config), stop_after=stop_after)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A workdir holding a run stopped after 3 of its 6 steps (checkpoint at step 3)."""
    workdir = tmp_path_factory.mktemp("interrupted")
    state, _ = _run(tiny_config(), workdir, stop_after=3)
    assert int(state.step) == 3
    return workdir


@pytest.mark.slow
def test_resumed_run_is_bit_identical(interrupted, tmp_path):
    full, _ = _run(tiny_config(), tmp_path / "full")
    shutil.copytree(interrupted, tmp_path / "resumed")
    resumed, _ = _run(tiny_config(), tmp_path / "resumed")
    assert int(full.step) == int(resumed.step) == 6
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(interrupted, tmp_path):
    workdir = tmp_path / "nan"
    shutil.copytree(interrupted, workdir)
    config = tiny_config(**{"train.lr_d": 1e30, "train.lr_g": 1e30})
    with pytest.raises(FloatingPointError, match=r"between steps 3 and 4"):
        _run(config, workdir)
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()
                  if p.name.isdigit()) == ["3"]
