"""Workdirs with checkpoints written directly (no training) for the checkpoint/workdir tests."""

import atexit
import functools
import json
import shutil
import tempfile

import jax.numpy as jnp

from gan_zoo.train import checkpoint, sharding, workdir
from gan_zoo.train.loop import build_state
from tests.train._tiny import tiny_config, tiny_networks


def tiny_layout(config):
    """(abstract state, init fn) of the tiny networks for `config` on a 1-device mesh."""
    _, abstract, _, init = build_state(config, sharding.make_mesh(config.mesh),
                                       tiny_networks(config))
    return abstract, init


def write_run(path, config, steps=(3, 6)):
    """`path` as a run of `config` leaves it: config.json, config_0.json and a checkpoint (the
    fresh state with its step set) at each of `steps`."""
    _, init = tiny_layout(config)
    workdir.record_config(config, str(path), 0)
    ckpt = checkpoint.Checkpointer(str(path), 3, False)
    state, cfg = init(), json.loads(config.to_json_best_effort())
    for step in steps:
        ckpt.save(step, state.replace(step=jnp.asarray(step, jnp.int32)), cfg)
    ckpt.close()
    return path


@functools.lru_cache(maxsize=None)
def _template() -> str:
    path = tempfile.mkdtemp(prefix="gan_zoo_run_")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return str(write_run(path, tiny_config()))


def copy_run(dest):
    """A copy at `dest` of write_run(tiny_config()) (written once per process: one compile)."""
    shutil.copytree(_template(), dest)
    return dest
