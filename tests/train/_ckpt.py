"""Workdirs with checkpoints written directly (no training) for the checkpoint/workdir tests."""

import atexit
import functools
import json
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo.train import checkpoint, sharding, workdir
from gan_zoo.train.loop import build_state
from tests.train._tiny import tiny_config, tiny_networks


def tiny_layout(config):
    """(abstract state, init fn) of the tiny networks for `config` on a 1-device mesh."""
    _, abstract, _, init = build_state(config, sharding.make_mesh(config.mesh),
                                       tiny_networks(config))
    return abstract, init


def filled(abstract):
    """A state shaped like `abstract` holding 0, 1, 2, ... per leaf (no compile, unlike init)."""
    return jax.tree.map(lambda a: jax.device_put(
        np.arange(a.size).reshape(a.shape).astype(a.dtype)), abstract)


def write_run(path, config, steps=(3, 6)):
    """`path` as a run of `config` leaves it: config.json, config_0.json and a checkpoint (a
    state of the run's shapes, its step set) at each of `steps`."""
    abstract, _ = tiny_layout(config)
    workdir.record_config(config, str(path), 0)
    ckpt = checkpoint.Checkpointer(str(path), 3, False)
    state, cfg = filled(abstract), json.loads(config.to_json_best_effort())
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
