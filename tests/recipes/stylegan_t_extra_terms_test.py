"""The StyleGAN-T recipe's terms not in the paper, on stub networks (~3 s).
config.train.ms_weight (MSGAN's mode seeking, losses.mode_seeking): off leaves G's loss alone;
on, G's batch pairs repeat the first half's captions and the term is added at its weight.
config.train.mismatch_weight (GAN-CLS's matching-aware D term): off leaves D's loss alone; on,
each real scored under the previous sample's caption is one more hinge fake; the caption margins
are logged either way. Bad weights and odd batches name the field."""

import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import stylegan_t as t_config
from gan_zoo.recipes import stylegan_t as rt

RES, N = 4, 8


class _PixG(nn.Module):
    """G(z, c) = z_scale * s * z (as a RES^2 RGB image) + mean(c): pairs under one caption
    differ by exactly z_scale * s * (z1 - z2)."""

    z_scale: float  # 0: G ignores z
    z_dim: int = RES * RES * 3

    @nn.compact
    def __call__(self, z, c):
        s = self.param("s", nn.initializers.ones, ())
        img = self.z_scale * s * z.reshape(-1, RES, RES, 3)
        return img + jnp.mean(c, axis=-1)[:, None, None, None], {}


class _TextG(nn.Module):
    """The recipe's TextConditionedG interface: encode(tokens) = the tokens as floats."""

    G: nn.Module

    def encode(self, tokens):
        return tokens.astype(jnp.float32)

    def __call__(self, z, c, fused_modconv=None, update_emas=False):
        return self.G(z, c)


class _TokenClip(nn.Module):
    """The frozen CLIP's text side: the tokens as floats."""

    def encode_text(self, tokens, normalize=True):
        return tokens.astype(jnp.float32)


class _SumD(nn.Module):
    """D(img, c) = one token per sample, the sum of its pixels."""

    @nn.compact
    def __call__(self, img, c, train, key, c_alt=None):
        return jnp.sum(img, axis=(1, 2, 3))[:, None], {}


class _ProjD(nn.Module):
    """D(img, c) = one token per sample, sum of its pixels x mean of c (c_alt: the same sums
    under c_alt in aux["logits_alt"])."""

    @nn.compact
    def __call__(self, img, c, train, key, c_alt=None):
        s = jnp.sum(img, axis=(1, 2, 3))
        aux = {} if c_alt is None else {"logits_alt": (s * jnp.mean(c_alt, axis=-1))[:, None]}
        return (s * jnp.mean(c, axis=-1))[:, None], aux


def _nets(ms_weight: float, z_scale: float = 1.0, batch: int = N, mismatch_weight=0.0, D=None):
    c = t_config.get_config("digits_text,smoke")
    c.train.ms_weight, c.train.batch_size = ms_weight, batch
    c.train.mismatch_weight = mismatch_weight
    c.train.clip_weight, c.train.blur_sigma, c.train.clip_augment = 0.0, 0.0, ""
    stage = rt.TStage(rt.PRIMARY, RES, 0, 1)
    return rt._Nets(_TextG(_PixG(z_scale)), D or _SumD(), _TokenClip(), c, stage)


def _g_loss(ms_weight: float, z_scale: float = 1.0):
    state = types.SimpleNamespace(collections={"g": {}, "d": {}, rt.CLIP: {}},
                                  params={"d": {}}, step=jnp.zeros((), jnp.int32))
    batch = {"tokens": jnp.arange(N * 3, dtype=jnp.int32).reshape(N, 3)}  # 8 distinct captions
    g_params = {"G": {"s": jnp.ones(())}, "text": {}}
    loss_fn = jax.jit(lambda p: rt._g_main(_nets(ms_weight, z_scale), p, state, batch,
                                           jax.random.PRNGKey(3)))
    loss, (_, metrics) = loss_fn(g_params)
    return float(loss), jax.device_get(metrics)


def check_off_and_paired_terms(g_loss):
    """g_loss(ms_weight, z_scale) -> (loss, metrics) of a recipe's G step over a G = z_scale · s
    · z + (its condition): off is the adversarial loss alone; on, paired conditions cancel in the
    image differences (exactly z's: ratio 1; unpaired, the conditions would add to it) and the
    term is added at its weight; a G that ignores z draws each pair identically (1 / eps)."""
    loss, m = g_loss(0.0)
    assert "mode_seeking" not in m and loss == pytest.approx(float(m["loss_adv"]))
    loss, m = g_loss(0.5)
    np.testing.assert_allclose(m["mode_seeking"], 1.0 / (1.0 + 1e-5), rtol=1e-5)
    assert loss == pytest.approx(float(m["loss_adv"]) + 0.5 * float(m["mode_seeking"]))
    _, m = g_loss(0.5, z_scale=0.0)
    np.testing.assert_allclose(m["mode_seeking"], 1e5, rtol=1e-6)


def test_off_paired_captions_and_the_preset_default():
    check_off_and_paired_terms(_g_loss)
    assert t_config.get_config("lite64").train.ms_weight == 0.0


@pytest.mark.parametrize("ms_weight, batch", [(-1.0, N), (0.1, 7)])
def test_bad_weight_or_odd_batch_names_the_field(ms_weight, batch):
    with pytest.raises(ValueError, match="config.train.ms_weight"):
        _nets(ms_weight, batch=batch)


def _d_loss(mismatch_weight: float, tokens, reals):
    state = types.SimpleNamespace(collections={"g": {}, "d": {}, rt.CLIP: {}},
                                  params={"g": {"G": {"s": jnp.ones(())}, "text": {}}},
                                  step=jnp.zeros((), jnp.int32))
    nets = _nets(0.0, mismatch_weight=mismatch_weight, D=_ProjD())
    loss_fn = jax.jit(lambda p: rt._d_main(nets, p, state, {"tokens": tokens, "image": reals},
                                           jax.random.PRNGKey(5)))
    loss, (_, metrics) = loss_fn({})
    return float(loss), jax.device_get(metrics)


def test_mismatch_term_scores_reals_under_the_previous_captions():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 9, (N, 3)).astype(np.int32)
    reals = rng.uniform(-0.2, 0.2, (N, RES, RES, 3)).astype(np.float32)
    s, m = reals.sum(axis=(1, 2, 3)), tokens.mean(axis=1)
    own, other = s * m, s * np.roll(m, 1)  # the sample before's caption: jnp.roll(c, 1)
    loss0, m0 = _d_loss(0.0, tokens, reals)
    assert "loss_mismatch" not in m0
    assert loss0 == pytest.approx(float(m0["loss_real"]) + float(m0["loss_fake"]))
    np.testing.assert_allclose(m0["loss_real"], np.mean(np.maximum(0, 1 - own)), rtol=1e-5)
    np.testing.assert_allclose(m0["margin_real"], np.mean(own - other), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m0["pairwise_real"], np.mean(own > other))
    loss, m1 = _d_loss(0.5, tokens, reals)
    expected = np.mean(np.maximum(0, 1 + other))
    np.testing.assert_allclose(m1["loss_mismatch"], expected, rtol=1e-5)
    assert loss == pytest.approx(loss0 + 0.5 * expected, rel=1e-5)
    assert t_config.get_config("lite64").train.mismatch_weight == 0.0


@pytest.mark.parametrize("weight", [-0.5, float("nan")])
def test_bad_mismatch_weight_names_the_field(weight):
    with pytest.raises(ValueError, match="config.train.mismatch_weight"):
        _nets(0.0, mismatch_weight=weight)
