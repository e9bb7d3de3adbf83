"""StyleGAN-T on 1 vs 8 simulated CPU devices (issue #15 item 10): the digits_text,smoke primary
16^2 stage on one device and on data=2 x fsdp=4 (batch over 8 devices; G, its text encoder, D,
Adam and EMA sharded over fsdp by sharding.FSDP_RULES) gives, leaf by leaf, the same G and D
gradients (and losses) at the initial state. (The train step's own 1 vs 8 equality, Adam and
EMA included, is tests/train/fsdp_test.py's on a tiny BigGAN; a StyleGAN-T train step here would
double this file's compiles, and Adam with b1 = 0 would hide a 2x gradient anyway.)
D's BatchNormLocal is grouped by d_bn_devices=2 (groups of 4 samples), not by the device count,
as a multi-device run that must match a single-device one sets it."""

import functools

import jax
import numpy as np
import pytest

from configs import stylegan_t as t_config
from gan_zoo import data as gdata
from gan_zoo.train import loop, sharding
from gan_zoo.train.step import real_batches

pytestmark = pytest.mark.slow  # 2 compiles of the StyleGAN-T gradients
MESHES = ({"data": 1}, {"data": 2, "fsdp": 4})


def _config(mesh: dict):
    c = t_config.get_config("digits_text,smoke")
    c.model.d_bn_devices = 2
    c.model.clip_fit_steps = 0
    c.matmul_precision = "highest"
    c.mesh = dict(mesh)
    c.param_rules = sharding.FSDP_RULES if "fsdp" in mesh else ()
    return c


def _grads(recipe, state, batch):
    """{phase: (loss, gradient of its params)} at `state` (the train step's keys)."""
    key = jax.random.fold_in(state.rng, state.step)
    reals = real_batches(recipe.phases, batch)
    out = {}
    for i, phase in enumerate(recipe.phases):
        mb = jax.tree.map(lambda x: x[0], reals[phase.name])
        (loss, _), g = jax.value_and_grad(phase.loss_fn, has_aux=True)(
            state.params[phase.update], state, mb, jax.random.fold_in(key, i))
        out[phase.name] = (loss, g)
    return out


def _run(mesh_cfg: dict) -> dict:
    config = _config(mesh_cfg)
    mesh = sharding.make_mesh(config.mesh)
    recipe = loop.make_run_recipe(config)
    r = recipe.stage_recipe(recipe.stage_fn(0).key)
    layout = loop.state_layout(r, config, mesh)
    state = layout.init()
    batches = gdata.make_source(config.data, config.model.resolution, config.seed).batches(
        gdata.Layout(r.real_batches_per_step, 1, config.train.batch_size))
    in_sharding = sharding.batch_sharding(mesh)
    batch = jax.device_put(next(batches), in_sharding)
    grads = jax.device_get(jax.jit(functools.partial(_grads, r))(state, batch))
    sharded = [leaf for leaf in jax.tree.leaves(state.params)
               if not leaf.sharding.is_fully_replicated]
    return dict(grads=grads, n_sharded=len(sharded))


@pytest.fixture(scope="module")
def runs():
    return [_run(m) for m in MESHES]


def _leaves(tree) -> dict:
    return {jax.tree_util.keystr(k): np.asarray(v)
            for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


NOISE = 1e-6  # a gradient leaf below NOISE x the phase's largest is float noise (see below)


def test_gradients_agree_leaf_by_leaf(runs):
    """Every gradient leaf of G and D, 1 device vs data=2 x fsdp=4, to float32 reduction-order
    noise: |g8 - g1| <= 1e-4 max|g1 leaf| + NOISE max|g1 phase|. The second term covers leaves
    whose exact gradient is 0 (conv biases ahead of D's BatchNorm: ~1e-10 of rounding, in
    either run). A sharding bug (a missing or doubled all-reduce) is a factor of 2-8 on a whole
    leaf, and the message names the leaf and the factor."""
    one, eight = runs
    assert eight["n_sharded"] > 0  # the fsdp run really holds sharded parameters
    for phase, (loss1, g1) in one["grads"].items():
        loss8, g8 = eight["grads"][phase]
        np.testing.assert_allclose(loss8, loss1, rtol=1e-5, err_msg=phase)
        a, b = _leaves(g1), _leaves(g8)
        assert a.keys() == b.keys() and len(a) > 20, phase
        floor = NOISE * max(np.abs(v).max() for v in a.values())
        for path in a:
            scale = np.abs(a[path]).max()
            ratio = np.abs(b[path]).max() / max(scale, 1e-30)
            np.testing.assert_allclose(b[path], a[path], rtol=0, atol=1e-4 * scale + floor,
                                       err_msg=f"{phase} grad {path}: max ratio 8/1 {ratio}")
