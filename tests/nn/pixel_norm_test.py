"""Pixelwise feature-vector normalisation (ProGAN §4.2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo import nn as gnn


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_pixel_norm_gives_unit_rms_per_pixel(dtype):
    x = (5.0 * jax.random.normal(jax.random.PRNGKey(0), (2, 3, 4, 16))).astype(dtype)
    y = gnn.pixel_norm(x)
    assert y.dtype == dtype and y.shape == x.shape
    rms = np.sqrt(np.mean(np.square(np.asarray(y, np.float32)), axis=-1))
    np.testing.assert_allclose(rms, 1.0, rtol=1e-2 if dtype == jnp.bfloat16 else 1e-5)
    # Direction is kept: y is a positive multiple of x per pixel.
    xf = np.asarray(x, np.float32)
    scale = np.sqrt(np.mean(xf**2, axis=-1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(np.asarray(y, np.float32), xf / scale, rtol=1e-2, atol=1e-2)


def test_pixel_norm_eps_and_module():
    x = jnp.zeros((1, 2, 2, 4))
    assert np.all(np.isfinite(gnn.pixel_norm(x)))
    z = jax.random.normal(jax.random.PRNGKey(1), (3, 8))
    out = gnn.PixelNorm().apply({}, z)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.sqrt(8), rtol=1e-5)
