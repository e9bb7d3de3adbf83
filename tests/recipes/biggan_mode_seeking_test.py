"""Mode-seeking regulariser (losses.mode_seeking, config.train.ms_weight of the BigGAN recipe)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import biggan as biggan_config
from gan_zoo import losses
from gan_zoo.recipes import biggan as recipe_lib
from tests.recipes.biggan_diffaug_test import _SumD  # D(x, y) = sum of x's pixels

RES = 4


def test_mode_seeking_matches_its_formula():
    rng = np.random.default_rng(0)
    images, z = rng.normal(size=(6, RES, RES, 3)), rng.normal(size=(6, 5))
    ratio = np.abs(images[:3] - images[3:]).mean() / np.abs(z[:3] - z[3:]).mean()
    np.testing.assert_allclose(losses.mode_seeking(jnp.asarray(images), jnp.asarray(z)),
                               1.0 / (ratio + 1e-5), rtol=1e-5)
    with pytest.raises(ValueError, match="even batch"):
        losses.mode_seeking(jnp.zeros((3, RES, RES, 3)), jnp.zeros((3, 5)))


class _LabelG(nn.Module):
    """G(z, y) = s * y everywhere: z is ignored, so two samples differ only by their labels."""

    @nn.compact
    def __call__(self, z, y, *, train):
        s = self.param("s", nn.initializers.ones, ())
        return s * y[:, None, None, None].astype(jnp.float32) * jnp.ones((1, RES, RES, 3)), {}


def _g_metrics(ms_weight: float):
    c = biggan_config.get_config("digits")
    c.model.resolution, c.train.batch_size, c.train.ms_weight = RES, 16, ms_weight
    c.train.diffaug = ""
    recipe = recipe_lib.make_recipe(c, networks=(_LabelG(), _SumD()))
    state = recipe.init_state(jax.random.PRNGKey(0), c)
    batch = {"image": jnp.ones((16, RES, RES, 3)), "label": jnp.zeros(16, jnp.int32)}
    loss, (_, metrics) = jax.jit(recipe.phases[-1].loss_fn)(state.params["g"], state, batch,
                                                            jax.random.PRNGKey(1))
    return float(loss), jax.device_get(metrics)


def test_g_pairs_share_labels_and_a_g_ignoring_z_gets_the_largest_penalty():
    loss, m = _g_metrics(0.0)
    assert "mode_seeking" not in m and loss == pytest.approx(m["adv"] + m["ortho"])
    # The 16 labels are random over 10 classes; paired halves repeat them, so a G that ignores z
    # draws each pair identically: the ratio is 0 and the penalty 1 / eps.
    loss, m = _g_metrics(0.5)
    np.testing.assert_allclose(m["mode_seeking"], 1e5, rtol=1e-6)
    assert loss == pytest.approx(m["adv"] + m["ortho"] + 0.5e5)
    with pytest.raises(ValueError, match="config.train.ms_weight"):
        _g_metrics(-1.0)
