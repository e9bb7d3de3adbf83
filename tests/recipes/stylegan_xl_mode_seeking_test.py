"""config.train.ms_weight of the StyleGAN-XL recipe (MSGAN's mode seeking, losses.mode_seeking):
off leaves G's loss alone; on, G's batch pairs repeat the first half's labels and the term is
added at its weight; bad weights and odd (stage) batches name the field. Stub networks, ~2 s."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from configs import stylegan_xl as xl_config
from gan_zoo.recipes import stylegan_xl as xl_recipe
from tests.recipes.stylegan_t_extra_terms_test import (
    RES,
    _PixG,
    _SumD,
    check_off_and_paired_terms,
)

N, K = 8, 10  # G batch, classes


class _XLG(nn.Module):
    """The XL recipe's G interface (map, synthesize) over StyleGAN-T's test G _PixG(z, c) = z_scale
    · s · z + mean(c), given c = label · K · one-hot: G(z, y) = z_scale · s · z + y, so pairs
    under one label differ by exactly z_scale · s · (z1 − z2)."""

    z_scale: float  # 0: G ignores z
    z_dim: int = RES * RES * 3
    img_channels: int = 3

    def setup(self):
        self.pix = _PixG(self.z_scale)

    def map(self, z, c):
        return jnp.concatenate([z, c * jnp.arange(K) * K], axis=-1)  # "ws": [N, z_dim + K]

    def synthesize(self, ws, fused_modconv=None):
        return self.pix(ws[:, :self.z_dim], ws[:, self.z_dim:])

    def __call__(self, z, c):
        return self.synthesize(self.map(z, c))


class _XLD(nn.Module):
    """The projected D's interface over StyleGAN-T's test D (the sum of the pixels): one head."""

    @nn.compact
    def __call__(self, img, c, train, key, c_alt=None):
        logits, _ = _SumD()(img, c, train, key)
        return None, {"logits": {"sum": logits}}


def _nets(ms_weight: float, z_scale: float = 1.0, batch: int = N):
    c = xl_config.get_config("digits,smoke")
    c.train.ms_weight, c.train.batch_size, c.train.blur_sigma = ms_weight, batch, 0.0
    stage = xl_recipe.XLStage(16, True, batch, 0, 1)
    return xl_recipe._Nets(_XLG(z_scale), _XLD(), None, c, stage)


def _g_loss(ms_weight: float, z_scale: float = 1.0):
    nets = _nets(ms_weight, z_scale)
    g_params = {"pix": {"s": jnp.ones(())}}
    state = xl_recipe.GANState(step=jnp.zeros((), jnp.int32), rng=jax.random.PRNGKey(0),
                               params={"d": {}}, opt_state={}, ema_params={},
                               collections={"g": {}, "d": {}}, scalars={})
    loss_fn = jax.jit(lambda p: xl_recipe._g_main(nets, N, p, state, None, jax.random.PRNGKey(3)))
    loss, (_, metrics) = loss_fn(g_params)
    return float(loss), jax.device_get(metrics)


def test_off_paired_labels_and_the_preset_default():
    check_off_and_paired_terms(_g_loss)
    assert xl_config.get_config("imagenet").train.ms_weight == 0.0  # the paper's loss
    assert xl_config.get_config("digits").train.ms_weight == 0.05  # the CPU preset's (RESULTS)


@pytest.mark.parametrize("ms_weight, batch", [(-1.0, N), (0.1, 7)])
def test_bad_weight_or_odd_stage_batch_names_the_field(ms_weight, batch):
    with pytest.raises(ValueError, match="config.train.ms_weight"):
        _nets(ms_weight, batch=batch)
