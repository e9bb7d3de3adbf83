"""BigGAN recipe: losses, truncation, standing statistics, and two real-network train steps."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import biggan as biggan_config
from gan_zoo import losses, train
from gan_zoo import nn as gnn
from gan_zoo.recipes import biggan as recipe_lib
from gan_zoo.train import inference, sharding


def test_hinge_losses():
    loss, (real, fake) = losses.hinge_d(jnp.array([2.0, 0.0]), jnp.array([-2.0, 1.0]))
    np.testing.assert_allclose([real, fake, loss], [0.5, 1.0, 1.5])
    np.testing.assert_allclose(losses.hinge_g(jnp.array([1.0, 3.0])), -2.0)


@pytest.mark.parametrize("shape", [(3, 7), (7, 3), (3, 3, 4, 5)])
def test_ortho_reg_matches_the_formula(shape):
    w = jax.random.normal(jax.random.PRNGKey(0), shape)
    w2 = w.reshape(-1, shape[-1])
    gram = w2.T @ w2
    naive = jnp.sum(jnp.square(gram * (1 - jnp.eye(shape[-1]))))  # ||(W^T W) ⊙ (1 - I)||_F^2
    np.testing.assert_allclose(losses.offdiag_gram_sq(w), naive, rtol=1e-4)
    params = {"shared": {"weight": w2}, "conv": {"weight": w, "bias": jnp.ones(shape[-1])}}
    np.testing.assert_allclose(losses.ortho_reg(params, 1e-4), 1e-4 * naive, rtol=1e-4)


def test_truncation_modes():
    key = jax.random.PRNGKey(0)
    z = recipe_lib.sample_z(key, (4096, 8), 0.5, "threshold")
    assert float(jnp.max(jnp.abs(z))) <= 0.5 and float(jnp.std(z)) > 0.25  # resampled, not clipped
    z = recipe_lib.sample_z(key, (4096, 8), 0.5, "tfhub_scaled")
    assert float(jnp.max(jnp.abs(z))) <= 1.0
    assert float(jnp.max(jnp.abs(recipe_lib.sample_z(key, (4096, 8), 0.0)))) > 3.0
    with pytest.raises(ValueError, match="truncation_mode"):
        recipe_lib.sample_z(key, (2, 2), 1.0, "clip")


class _BNG(nn.Module):
    """G(z, y) = BN(z): its standing statistics are the average z moments."""

    @nn.compact
    def __call__(self, z, y, *, train):
        return gnn.BatchNorm(momentum=0.3, use_affine=False)(z[:, None, None, :], train=train), {}


def test_standing_stats_average_the_batch_moments():
    G = _BNG()
    variables = G.init(jax.random.PRNGKey(0), jnp.ones((2, 4)), jnp.zeros(2, jnp.int32),
                       train=False)
    state = train.GANState(step=0, rng=None, params={}, opt_state={},
                           ema_params=variables["params"] if "params" in variables else {},
                           collections={"g": {"batch_stats": variables["batch_stats"]}},
                           scalars={})
    key = jax.random.PRNGKey(1)
    cols = recipe_lib.standing_stats(G, 3, 64, 4, 1, "threshold", state, key, 0.0)
    zs = [recipe_lib.sample_z(jax.random.fold_in(jax.random.fold_in(key, i), 0), (64, 4))
          for i in range(3)]
    stats = jax.tree.leaves(cols["batch_stats"])  # stored_mean, stored_var (sorted names)
    np.testing.assert_allclose(stats[0], np.mean([z.mean(0) for z in zs], 0), atol=1e-5)
    np.testing.assert_allclose(stats[1], np.mean([z.var(0, ddof=1) for z in zs], 0), atol=1e-5)


def _real_tiny_config():
    c = biggan_config.get_config("digits")
    c.model.G_ch, c.model.D_ch, c.model.dim_z, c.model.shared_dim = 2, 2, 16, 8
    c.train.batch_size, c.train.num_steps = 4, 2
    c.sample.standing_stats_batches, c.sample.standing_stats_batch_size = 1, 4
    c.checkpoint.use_async = False
    c.log.every_steps, c.log.image_every_steps, c.log.sv_every_steps, c.log.grid_size = 1, 2, 2, 4
    c.mesh.data = 2
    return c


@pytest.mark.slow
def test_real_biggan_trains_samples_and_summarises(tmp_path):
    config = _real_tiny_config()
    state, history = train.run(config, str(tmp_path))
    assert int(state.step) == 2 and all(m["finite"] for _, m in history)
    assert 0 < history[-1][1]["g/ortho"] < 1.0  # ortho reg on, shared embedding excluded
    assert (tmp_path / "samples" / "00000002.png").exists()
    images, labels = inference.sample(config, str(tmp_path), num=6, truncation=1.0)
    assert images.shape == (6, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, [0, 1, 3, 5, 6, 8])
    text = inference.summary(config)
    assert "G params: " in text and "D params: " in text
    assert sharding.make_mesh({"data": -1}).shape["data"] == jax.device_count()
