"""LPIPS-VGG16 (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features"), lpips v0.1.

d(x0, x1) = sum_l mean_hw || w_l * (f̂_l(x0) - f̂_l(x1)) ||², with
  1. input scaling (x - shift) / scale on images in [-1, 1] (the lpips ScalingLayer);
  2. f_l: VGG16 conv features at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3;
  3. f̂_l = f_l / (||f_l||_channels + 1e-10) (unit-normalised per pixel over channels);
  4. w_l: the learned non-negative 1x1 `lin` weights (one per channel, no bias);
  5. spatial mean per layer, sum over the 5 layers -> [N].
Weights: `gan_zoo.convert.vgg16.load_lpips` (lpips state-dict names).
"""

import flax.linen as nn
import jax.numpy as jnp

from gan_zoo.feature_nets.vgg16 import TAPS, WIDTHS, VGG16Trunk

SHIFT = (-0.030, -0.088, -0.188)  # lpips ScalingLayer.shift
SCALE = (0.458, 0.448, 0.450)  # lpips ScalingLayer.scale
LAYERS = tuple(TAPS.values())  # relu1_2 ... relu5_3
EPS = 1e-10


def normalize_channels(f):
    """f / (||f||_2 over channels + eps). [N, H, W, C] -> same."""
    return f / (jnp.sqrt(jnp.sum(jnp.square(f), axis=-1, keepdims=True)) + EPS)


class LPIPS(nn.Module):
    """LPIPS-VGG distance. x0, x1: float [N, H, W, 3] in [-1, 1] -> [N] (0 for identical)."""

    widths: tuple = WIDTHS  # VGG16 channels of blocks 1-5 (smaller only in tests)

    @nn.compact
    def __call__(self, x0, x1):
        if x0.shape != x1.shape or x0.ndim != 4 or x0.shape[-1] != 3:
            raise ValueError(f"LPIPS: expected two images [N, H, W, 3] of one shape, got "
                             f"{x0.shape} and {x1.shape}")
        n = x0.shape[0]
        x = jnp.concatenate([x0, x1]).astype(jnp.float32)
        x = (x - jnp.asarray(SHIFT)) / jnp.asarray(SCALE)  # 1. scaling layer
        _, taps = VGG16Trunk(self.widths, pool_last=False, name="net")(x)  # 2.
        total = jnp.zeros((n,), jnp.float32)
        for k, (name, width) in enumerate(zip(LAYERS, self.widths)):
            f = normalize_channels(taps[name])  # 3.
            diff = jnp.square(f[:n] - f[n:])  # [N, H, W, C]
            w = self.param(f"lin{k}", nn.initializers.ones, (width,))  # 4. 1x1 conv, no bias
            total = total + jnp.mean(jnp.sum(diff * w, axis=-1), axis=(1, 2))  # 5.
        return total


def lpips_features(variables):
    """fn(images [N, H, W, 3] float in [0, 255]) -> [N, F] with ||F(a) - F(b)||^2 = LPIPS(a, b).

    Each layer contributes f̂_l * sqrt(w_l) / sqrt(H_l W_l) (w_l >= 0), so the squared feature
    distance is the sum over layers of the spatial mean of the weighted squared difference: the
    form the StyleGAN2 projector optimises (features of the target computed once).
    """
    p = variables["params"]
    widths = tuple(int(p[f"lin{k}"].shape[0]) for k in range(len(LAYERS)))
    trunk = VGG16Trunk(widths, pool_last=False)

    def features(images):
        x = images.astype(jnp.float32) / 127.5 - 1.0
        x = (x - jnp.asarray(SHIFT)) / jnp.asarray(SCALE)
        _, taps = trunk.apply({"params": p["net"]}, x)
        feats = []
        for k, name in enumerate(LAYERS):
            f = normalize_channels(taps[name])  # [N, H, W, C]
            n, h, w, _ = f.shape
            f = f * jnp.sqrt(jnp.maximum(p[f"lin{k}"], 0.0)) / jnp.sqrt(float(h * w))
            feats.append(f.reshape(n, -1))
        return jnp.concatenate(feats, axis=1)

    return features


def ppl_distance(variables, net: LPIPS = None):
    """(a, b) -> [N] LPIPS for `gan_zoo.metrics.ppl`, whose images are float in [0, 255]."""
    net = net or LPIPS()
    return lambda a, b: net.apply(variables, a / 127.5 - 1.0, b / 127.5 - 1.0)
