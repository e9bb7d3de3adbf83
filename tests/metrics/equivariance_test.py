"""Fractional EQ-T and EQ-R on an exactly equivariant toy (band-limited sinusoids rendered from
transformed input coordinates), against a toy with pixel-locked structure."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo.metrics import equivariance as eq

RES = 32


def _toy(locked: float = 0.0):
    """synthesize(latents [n, 4, 3] = (fx, fy, phase) per sinusoid, transform) -> [n, R, R, 3].

    Frequencies stay below 3 cycles per image (0.09 cycles/pixel): band-limited far below
    Nyquist. `locked` adds a pattern fixed to the pixel grid (breaks equivariance)."""
    u = (np.arange(RES) + 0.5) / RES - 0.5  # pixel centres in [-0.5, 0.5]
    vv, uu = np.meshgrid(u, u, indexing="ij")  # rows = y, cols = x
    checker = np.where((np.arange(RES)[:, None] + np.arange(RES)) % 2, 1.0, -1.0)

    def synthesize(latents, transform):
        m = np.asarray(transform, np.float64)
        x = m[0, 0] * uu + m[0, 1] * vv + m[0, 2]  # input coordinates of each output pixel
        y = m[1, 0] * uu + m[1, 1] * vv + m[1, 2]
        lat = np.asarray(latents, np.float64)[:, :, None, None, :]  # [n, K, 1, 1, 3]
        waves = np.sin(2 * np.pi * (lat[..., 0] * x + lat[..., 1] * y) + lat[..., 2])
        img = waves.mean(1)[..., None] * np.ones(3) * 0.9  # [n, R, R, 3]
        return jnp.asarray(img + locked * checker[None, :, :, None])
    return synthesize


def _latents(key, n):
    f = jax.random.uniform(key, (n, 4, 2), minval=-2.8, maxval=2.8)
    phase = jax.random.uniform(jax.random.fold_in(key, 1), (n, 4, 1), maxval=2 * np.pi)
    return jnp.concatenate([f, phase], -1)


@pytest.mark.parametrize("metric", [eq.eqt_frac, eq.eqr])
def test_equivariant_toy_scores_high(metric):
    key = jax.random.PRNGKey(0)
    good = metric(_toy(), _latents, key, 8, batch_size=4)
    bad = metric(_toy(locked=0.1), _latents, key, 8, batch_size=4)
    assert good > 45.0, good  # only the Lanczos-3 interpolation error of the reference remains
    assert good > bad + 20.0, (good, bad)


def test_integer_eqt_of_toy_is_exact():
    assert eq.eqt_int(_toy(), _latents, jax.random.PRNGKey(1), 8, batch_size=4) > 100.0


def test_fractional_translation_at_integer_shift_is_exact():
    x = np.random.default_rng(0).normal(size=(2, RES, RES, 3))
    z, m = eq.fractional_translation(x, 3 / RES, -2 / RES)
    zi, mi = eq.integer_translation(x, 3 / RES, -2 / RES)
    assert m.sum() > 0 and np.all(mi[m > 0] == 1)
    np.testing.assert_allclose(z * m, zi * m, atol=1e-12)


def test_rotation_by_zero_and_quarter_turn():
    x = np.random.default_rng(1).normal(size=(1, RES, RES, 3))
    z, m = eq.fractional_rotation(x, 0.0)
    np.testing.assert_allclose((z * m)[m > 0], x[m > 0], atol=1e-12)
    z, m = eq.fractional_rotation(x, np.pi / 2)  # content at p moves to R p (x = col, y = row)
    np.testing.assert_allclose((z * m)[m > 0], np.rot90(x, k=-1, axes=(1, 2))[m > 0], atol=1e-9)
    with pytest.raises(ValueError, match="square"):
        eq.fractional_rotation(np.zeros((1, 4, 6, 3)), 0.1)
