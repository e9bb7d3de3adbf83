"""SA-GAN non-local (self-attention) block as used by BigGAN. BigGAN §3, App. B (spec biggan.md
§1.6); BigGAN-PyTorch `layers.Attention`.
"""

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_zoo import checks
from gan_zoo.nn.spectral_norm import SNConv

Dtype = jnp.dtype


class Attention(nn.Module):
    """Self-attention with 2x2 max-pooled keys and values. x: [N, H, W, C] -> [N, H, W, C].

    theta = x W_theta (C/8), phi = maxpool(x W_phi) (C/8), g = maxpool(x W_g) (C/2);
    beta = softmax_keys(theta phi^T) (no 1/sqrt(d)); out = x + gamma * o(beta g).
    Positions are flattened row-major (h, w), the same order as torch's NCHW view.
    Params: `theta`, `phi`, `g`, `o` (1x1 SNConv, no bias: `<name>/weight`), `gamma` (scalar, init
    0); collection `spectral_norm`: `<name>/u0`, `<name>/sv0`. Needs C % 8 == 0, even H and W.
    """

    num_svs: int = 1  # SN: singular values tracked (only 1 is supported)
    num_itrs: int = 1  # SN: power iterations per forward
    eps: float = 1e-12  # SN: F.normalize epsilon
    weight_init: nn.initializers.Initializer = nn.initializers.orthogonal()  # BigGAN §3
    dtype: Optional[Dtype] = None  # compute dtype of the convs; the softmax runs in float32

    def _conv(self, name: str, features: int) -> SNConv:
        return SNConv(features, kernel_size=1, padding="VALID", use_bias=False, name=name,
                      num_svs=self.num_svs, num_itrs=self.num_itrs, eps=self.eps,
                      weight_init=self.weight_init, dtype=self.dtype)

    @nn.compact
    def __call__(self, x, *, train: bool):
        checks.check_rank("Attention: x", x, 4, "[N, H, W, C]")
        n, h, w, c = x.shape
        if c % 8 or h % 2 or w % 2:
            raise ValueError(f"Attention: x must have C divisible by 8 and even H, W, got shape "
                             f"{tuple(x.shape)}")
        # Queries at all H*W positions; keys and values max-pooled 2x2 to H*W/4 positions.
        theta = self._conv("theta", c // 8)(x, train=train).reshape(n, h * w, c // 8)
        phi = _max_pool2(self._conv("phi", c // 8)(x, train=train)).reshape(n, -1, c // 8)
        g = _max_pool2(self._conv("g", c // 2)(x, train=train)).reshape(n, -1, c // 2)
        # Attention map over the pooled positions: [N, H*W, H*W/4].
        logits = jnp.einsum("nqc,nkc->nqk", theta, phi).astype(jnp.float32)
        beta = jax.nn.softmax(logits, axis=-1).astype(g.dtype)
        # Attend, project back to C channels, residual with the learnable scale gamma.
        attended = jnp.einsum("nqk,nkc->nqc", beta, g).reshape(n, h, w, c // 2)
        o = self._conv("o", c)(attended, train=train)
        gamma = self.param("gamma", nn.initializers.zeros_init(), (), jnp.float32)
        return (gamma * o + x).astype(self.dtype or x.dtype)


def _max_pool2(x):
    """2x2 max pool, stride 2 (torch F.max_pool2d(x, [2, 2])). [N, H, W, C] -> [N, H/2, W/2, C]."""
    return nn.max_pool(x, window_shape=(2, 2), strides=(2, 2))
