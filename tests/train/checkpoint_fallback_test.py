"""Checkpoint fallback (issue #19 item 1): a checkpoint that cannot be restored is reported,
moved aside to checkpoints/<step>.corrupt and the next older one is used; when none restores,
the error lists what was tried. The workdir holds two checkpoints written directly (steps 3
and 6, no training), so each case costs one restore."""

import glob
import logging
import os
import shutil

import jax
import jax.numpy as jnp
import pytest

from gan_zoo.train import checkpoint
from tests.train._ckpt import copy_run, filled, tiny_layout
from tests.train._tiny import tiny_config


@pytest.fixture(scope="module")
def layout():
    return tiny_layout(tiny_config())


def _array_files(step_dir):
    """The OCDBT data files of the state (the arrays' bytes), largest first."""
    return sorted(glob.glob(str(step_dir / "state" / "ocdbt.process_*" / "d" / "*")),
                  key=os.path.getsize, reverse=True)


def _truncate(path, keep=0.5):
    with open(path, "r+b") as f:
        f.truncate(int(os.path.getsize(path) * keep))


def _garble(path):
    data = bytearray(path.read_bytes())
    data[8:24] = bytes(range(0x80, 0x90))  # not UTF-8, not JSON
    path.write_bytes(bytes(data))


def _empty(step_dir):
    shutil.rmtree(step_dir)
    step_dir.mkdir()


CORRUPTIONS = {
    "arrays_truncated": lambda d: [_truncate(f) for f in _array_files(d)],
    "array_deleted": lambda d: os.remove(_array_files(d)[0]),
    "metadata_deleted": lambda d: os.remove(d / "state" / "_METADATA"),
    "metadata_garbled": lambda d: _garble(d / "state" / "_METADATA"),
    "metadata_truncated": lambda d: _truncate(d / "state" / "_METADATA"),
    "manifest_deleted": lambda d: os.remove(d / "state" / "manifest.ocdbt"),
    "empty_folder": _empty,
}




@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_newest_falls_back_to_older(layout, tmp_path, caplog, kind):
    workdir = copy_run(tmp_path / "run")
    CORRUPTIONS[kind](workdir / "checkpoints" / "6")
    ckpt = checkpoint.Checkpointer(str(workdir), 3, False)
    with caplog.at_level(logging.WARNING, logger="gan_zoo.train"):
        state = ckpt.restore(layout[0])
    assert int(jax.device_get(state.step)) == 3
    assert sorted(os.listdir(workdir / "checkpoints")) == ["3", "6.corrupt"]
    assert ckpt.latest_step() == 3  # Orbax does not count the .corrupt folder
    lines = [r.getMessage() for r in caplog.records if "cannot be restored" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert str(workdir / "checkpoints" / "6") in lines[0] and "6.corrupt" in lines[0]
    ckpt.close()


def test_callable_abstract_gets_each_tried_step(layout, tmp_path):
    workdir = copy_run(tmp_path / "run")
    _empty(workdir / "checkpoints" / "6")
    asked = []
    ckpt = checkpoint.Checkpointer(str(workdir), 3, False)
    state = ckpt.restore(lambda s: asked.append(s) or layout[0])
    assert asked == [6, 3] and int(jax.device_get(state.step)) == 3
    ckpt.close()


def test_none_restorable_lists_tried_steps(layout, tmp_path):
    workdir = copy_run(tmp_path / "run")
    os.remove(workdir / "checkpoints" / "6" / "state" / "_METADATA")
    _truncate(workdir / "checkpoints" / "3" / "state" / "_METADATA")
    ckpt = checkpoint.Checkpointer(str(workdir), 3, False)
    with pytest.raises(FileNotFoundError, match=r"could be restored.*step 6 \(.*_METADATA.*\).*"
                                                r"step 3 \(.*JSONDecodeError"):
        ckpt.restore(layout[0])
    assert sorted(os.listdir(workdir / "checkpoints")) == ["3.corrupt", "6.corrupt"]
    ckpt.close()


def test_saves_after_fallback_keep_the_corrupt_folder(layout, tmp_path):
    """A run that fell back saves again at 6 and 9: keep=2 drops 3, never 6.corrupt."""
    workdir = copy_run(tmp_path / "run")
    _empty(workdir / "checkpoints" / "6")
    ckpt = checkpoint.Checkpointer(str(workdir), 2, False)
    assert int(jax.device_get(ckpt.restore(layout[0]).step)) == 3
    state = filled(layout[0])  # on one device: saves fast (the restored one spans the mesh)
    for step in (6, 9):
        ckpt.save(step, state.replace(step=jnp.asarray(step, jnp.int32)), {})
    ckpt.wait()
    assert sorted(os.listdir(workdir / "checkpoints")) == ["6", "6.corrupt", "9"]
    assert int(jax.device_get(ckpt.restore(layout[0], step=6).step)) == 6
    ckpt.close()


def test_explicit_step_is_not_replaced_by_another(layout, tmp_path):
    workdir = copy_run(tmp_path / "run")
    _garble(workdir / "checkpoints" / "3" / "state" / "_METADATA")
    ckpt = checkpoint.Checkpointer(str(workdir), 3, False)
    with pytest.raises(FileNotFoundError, match=r"step 3 \(UnicodeDecodeError"):
        ckpt.restore(layout[0], step=3)
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at step 5 .*\[6\]"):
        ckpt.restore(layout[0], step=5)
    assert int(jax.device_get(ckpt.restore(layout[0]).step)) == 6
    ckpt.close()
