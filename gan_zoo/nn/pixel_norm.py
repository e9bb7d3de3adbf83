"""Pixelwise feature-vector normalisation. ProGAN §4.2 (spec stylegan2_and_progan.md §B6).

The same formula is StyleGAN's `normalize_2nd_moment` of the latent z (mean over the feature axis).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


def pixel_norm(x, eps: float = 1e-8, axis: int = -1):
    """b = a / sqrt(mean_j a_j^2 + eps) over the feature axis (ProGAN §4.2, eps = 1e-8).

    x: [..., C] (NHWC: per pixel over C). Computed in float32; returns x's shape and dtype.
    """
    xf = x.astype(jnp.float32)
    ms = jnp.mean(jnp.square(xf), axis=axis, keepdims=True)
    return (xf * jax.lax.rsqrt(ms + eps)).astype(x.dtype)


class PixelNorm(nn.Module):
    """Module wrapper of `pixel_norm`. ProGAN §4.2. x: [..., C] -> [..., C]; no parameters."""

    eps: float = 1e-8  # epsilon, ProGAN §4.2
    axis: int = -1  # feature axis (C in NHWC)

    def __call__(self, x):
        return pixel_norm(x, self.eps, self.axis)
