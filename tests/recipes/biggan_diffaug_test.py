"""BigGAN recipe with config.train.diffaug: DiffAugment reaches D's input in D and G steps."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from configs import biggan as biggan_config
from gan_zoo.recipes import biggan as recipe_lib

RES = 8


class _ConstG(nn.Module):
    """G(z, y) = s * ones: one parameter, so G's gradient counts the pixels D sees."""

    @nn.compact
    def __call__(self, z, y, *, train):
        s = self.param("s", nn.initializers.ones, ())
        return s * jnp.ones((z.shape[0], RES, RES, 3), jnp.float32), {}


class _SumD(nn.Module):
    """D(x, y) = sum of x's pixels per sample (no parameters but a dummy)."""

    @nn.compact
    def __call__(self, x, y, *, train):
        self.param("unused", nn.initializers.zeros, ())
        return jnp.sum(x, axis=(1, 2, 3)), {}


def _losses(policy: str):
    c = biggan_config.get_config("digits")
    c.model.resolution, c.train.batch_size, c.train.diffaug = RES, 16, policy
    c.train.ms_weight = 0.0  # G's gradient from D's input alone (the preset adds mode seeking)
    recipe = recipe_lib.make_recipe(c, networks=(_ConstG(), _SumD()))
    state = recipe.init_state(jax.random.PRNGKey(0), c)
    batch = {"image": jnp.ones((16, RES, RES, 3)), "label": jnp.zeros(16, jnp.int32)}
    key = jax.random.PRNGKey(1)
    d_phase, g_phase = recipe.phases[0], recipe.phases[-1]
    _, (_, d_metrics) = jax.jit(d_phase.loss_fn)(state.params["d"], state, batch, key)
    grad_s = jax.jit(jax.grad(lambda g: g_phase.loss_fn(g, state, batch, key)[0]))(
        state.params["g"])["s"]
    return d_metrics, float(grad_s)


def test_diffaug_changes_d_input_for_reals_fakes_and_g():
    full = RES * RES * 3  # D's logit of an all-ones image, un-augmented
    d_metrics, grad_s = _losses("")
    np.testing.assert_allclose([d_metrics["logit_real"], d_metrics["logit_fake"], -grad_s], full,
                               rtol=1e-6)
    # Cutout (a 4x4 square of 8x8) and zero-filled shifts remove pixels of reals and fakes alike,
    # and G's gradient sees the same masks: d(-mean D(aug(s * 1)))/ds = -mean unmasked count.
    d_metrics, grad_s = _losses("translation,cutout")
    real, fake = float(d_metrics["logit_real"]), float(d_metrics["logit_fake"])
    assert full * 0.5 < real < full and full * 0.5 < fake < full, (real, fake)
    assert full * 0.5 < -grad_s < full, grad_s
