"""StyleGAN2 layers shared by G and D (and by StyleGAN3's mapping): mapping network, resampling
conv, modulated synthesis layer, ToRGB. Karras et al. 2020, "Analyzing and Improving the Image
Quality of StyleGAN" (code: NVlabs/stylegan3 `training/networks_stylegan2.py`).

Layout NHWC, conv kernels HWIO [kh, kw, I, O], dense kernels [I, O]. Flax names match the official
torch names (`fc0`, `affine`, `weight`, `bias`, `noise_strength`, `noise_const`, `w_avg`) so that
`gan_zoo.convert.stylegan2` is a mechanical rename.

Collections: `params`; `ema_stats` (`w_avg`, updated by `update_emas=True`); `buffers`
(`noise_const`, constant after init). Random noise (`noise_mode='random'`) reads the `noise` rng.
"""

from typing import Optional, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo import checks, ops
from gan_zoo.nn import EqualizedDense, pixel_norm, weight_gain
from gan_zoo.ops.bias_act import activation_defaults

EMA = "ema_stats"  # collection of w_avg (and StyleGAN3 magnitude_ema): update_emas=True writes it
BUFFERS = "buffers"  # collection of constant buffers loaded from checkpoints (noise_const, ...)
NOISE_LEAF = "noise_const"  # SynthesisLayer's const noise map [R, R] in BUFFERS
DEFAULT_FILTER = (1, 3, 3, 1)  # "bilinear" FIR of all resampling (StyleGAN2 App. B)
ADAIN_BLUR = (1, 2, 1)  # StyleGAN1 blur after each upsampling conv (official blur_filter)
STYLE_MODES = ("modulate", "adain")  # SynthesisLayer.style_mode


def normalize_2nd_moment(x, eps: float = 1e-8):
    """x * rsqrt(mean(x^2) + eps) over the feature axis (StyleGAN2 code: unit-RMS z and c)."""
    return pixel_norm(x, eps, axis=-1)


def instance_norm(x, eps: float = 1e-8):
    """Per-sample, per-channel normalisation over H, W (StyleGAN1 AdaIN, official
    `instance_norm`): (x - mean) * rsqrt(mean((x - mean)^2) + eps). x: [N, H, W, C]."""
    x = x - jnp.mean(x, axis=(1, 2), keepdims=True)
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=(1, 2), keepdims=True) + eps)


def lerp(a, b, t):
    """torch.lerp(a, b, t) = a + t * (b - a)."""
    return a + t * (b - a)


def _normal(key, shape, dtype=jnp.float32):
    return jax.random.normal(key, shape, dtype)


class MappingNetwork(nn.Module):
    """Mapping network f: z -> w. StyleGAN2 App. B (8 FC, lr multiplier 0.01); StyleGAN3 (2 FC).

    z: [N, z_dim], c: [N, c_dim] or None -> ws [N, num_ws, w_dim] ([N, w_dim] if num_ws is None).
    Steps: normalise z and embed(c) to unit 2nd moment, concat, FC stack with lrelu; track
    w_avg (EMA of the batch mean of w, `ema_stats`); broadcast; truncation w_avg + psi (w - w_avg)
    on the first `cutoff` ws.
    """

    z_dim: int  # Z dimensionality, 0 = no latent (the conditional D's label mapping)
    c_dim: int  # label dimensionality, 0 = unconditional
    w_dim: int  # W dimensionality
    num_ws: Optional[int]  # number of w slots to broadcast to; None = return [N, w_dim]
    num_layers: int = 8  # number of FC layers (StyleGAN2: 8, StyleGAN3: 2)
    embed_features: Optional[int] = None  # label embedding size; None = w_dim
    layer_features: Optional[int] = None  # hidden FC width; None = w_dim
    activation: str = "lrelu"  # FC activation (lrelu, slope 0.2, gain sqrt(2))
    lr_multiplier: float = 0.01  # lr_mul of the FC layers (StyleGAN2 App. B: 100x lower lr)
    w_avg_beta: Optional[float] = 0.998  # decay of the w_avg EMA; None = do not track
    # StyleGAN-XL §3.1 (spec §1.2): (rows, E) = argmax(c) indexes a trainable [rows, E] table,
    # then an FC (lrelu) `embed_proj` to embed_features; None = dense `embed` of c (StyleGAN2).
    embed_table: Optional[tuple] = None
    class_w_avg: bool = False  # w_avg per class [c_dim, w_dim], truncation toward it (SG-XL §4.1)

    @nn.compact
    def __call__(self, z, c=None, psi=1.0, cutoff=None, update_emas=False):
        # Embed, normalise, concat.
        parts = []
        if self.z_dim > 0:
            checks.check_shape("MappingNetwork: z", z, [None, self.z_dim])
            parts.append(normalize_2nd_moment(z.astype(jnp.float32)))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"MappingNetwork: c_dim={self.c_dim} needs labels c [N, c_dim]")
            checks.check_shape("MappingNetwork: c", c, [None, self.c_dim])
            parts.append(normalize_2nd_moment(self._embed(c)))
        x = jnp.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

        # FC stack.
        for idx in range(self.num_layers):
            last = idx == self.num_layers - 1
            features = self.w_dim if last else (self.layer_features or self.w_dim)
            x = EqualizedDense(features, activation=self.activation,
                               lr_multiplier=self.lr_multiplier, name=f"fc{idx}")(x)

        # Track w_avg: w_avg <- lerp(mean_N(w), w_avg, beta) (per class: per sample, in order).
        if self.w_avg_beta is not None and self.num_ws is not None:
            shape = (self.c_dim, self.w_dim) if self.class_w_avg else (self.w_dim,)
            w_avg = self.variable(EMA, "w_avg", jnp.zeros, shape, jnp.float32)
            if update_emas and not self.is_initializing():
                w_avg.value = self._update_w_avg(w_avg.value, jax.lax.stop_gradient(x), c)
        if self.num_ws is None:
            return x

        # Broadcast, then truncate (StyleGAN2 Fig. 12: w' = w_avg + psi (w - w_avg)).
        x = jnp.broadcast_to(x[:, None, :], (x.shape[0], self.num_ws, self.w_dim))
        if not (isinstance(psi, (int, float)) and psi == 1):
            if self.w_avg_beta is None:
                raise ValueError("MappingNetwork: truncation (psi != 1) needs w_avg_beta")
            k = self.num_ws if cutoff is None else int(cutoff)
            center = w_avg.value[jnp.argmax(c, axis=1), None] if self.class_w_avg else w_avg.value
            x = x.at[:, :k].set(lerp(center, x[:, :k], psi))
        return x

    def _embed(self, c):
        """Label embedding: dense (StyleGAN2 App. B) or the table lookup + FC (StyleGAN-XL §3.1)."""
        features = self.embed_features or self.w_dim
        if self.embed_table is None:
            return EqualizedDense(features, name="embed")(c.astype(jnp.float32))
        rows, dim = self.embed_table
        if self.c_dim > rows:
            raise ValueError(f"MappingNetwork: c_dim={self.c_dim} exceeds embed_table rows {rows}")
        y = nn.Embed(rows, dim, embedding_init=nn.initializers.normal(1.0), name="embed")(
            jnp.argmax(c, axis=1))
        return EqualizedDense(features, activation="lrelu", name="embed_proj")(y)

    def _update_w_avg(self, w_avg, w, c):
        """EMA of w: batch mean, or per class w_avg[l_i] <- lerp(w_i, w_avg[l_i], beta) sample
        by sample in batch order (StyleGAN-XL code, `class-wise center`)."""
        if not self.class_w_avg:
            return lerp(jnp.mean(w, axis=0), w_avg, self.w_avg_beta)

        def step(avg, item):
            label, wi = item
            return avg.at[label].set(lerp(wi, avg[label], self.w_avg_beta)), None

        return jax.lax.scan(step, w_avg, (jnp.argmax(c, axis=1), w))[0]


class StyleSplit(nn.Module):
    """Second-order style, StyleGAN-T (Sauer et al. 2023) §3.1 eq. 1: s = s1 * s2 + s3, the equal
    thirds of one affine `proj` with 3 I outputs (bias init 1). w: [N, w_dim] -> [N, I]."""

    features: int  # I

    @nn.compact
    def __call__(self, w):
        m1, m2, m3 = jnp.split(EqualizedDense(3 * self.features, bias_init=1.0, name="proj")(w),
                               3, axis=-1)
        return m1 * m2 + m3


def style_affine(w, features: int, style_split: bool = False):
    """A layer's style affine named `affine`: dense, bias init 1 (StyleGAN2) or StyleSplit."""
    if style_split:
        return StyleSplit(features, name="affine")(w)
    return EqualizedDense(features, bias_init=1.0, name="affine")(w)


class Conv2dLayer(nn.Module):
    """Equalized-lr conv with optional FIR up/down-sampling. StyleGAN2 App. B (`Conv2dLayer`).

    x: [N, H, W, I] -> [N, H*up/down, W*up/down, out_channels]. Weight gain 1/sqrt(I k^2);
    `gain` scales the activation gain and the clamp (resnet blocks pass sqrt(0.5)).
    """

    out_channels: int  # O
    kernel_size: int  # k (padding k // 2)
    use_bias: bool = True  # add a bias before the activation
    activation: str = "linear"  # bias_act activation
    up: int = 1  # upsampling factor (transposed conv + FIR)
    down: int = 1  # downsampling factor (FIR + strided conv)
    resample_filter: Sequence[float] = DEFAULT_FILTER  # FIR taps, setup_filter semantics
    conv_clamp: Optional[float] = None  # clamp the output to +-conv_clamp * gain
    impl: str = "auto"  # op implementation, see gan_zoo.ops.dispatch

    @nn.compact
    def __call__(self, x, gain: float = 1.0):
        checks.check_rank("Conv2dLayer: x", x, 4, "[N, H, W, I]")
        k, i = self.kernel_size, x.shape[-1]
        w = self.param("weight", _normal, (k, k, i, self.out_channels))  # [k, k, I, O]
        b = self.param("bias", nn.initializers.zeros, (self.out_channels,)) if self.use_bias \
            else None
        # Conv with resampling; flip_weight=(up == 1) as in the official layer.
        f = ops.setup_filter(self.resample_filter)
        x = ops.conv2d_resample(x, w * weight_gain(i * k * k), f, up=self.up, down=self.down,
                                padding=k // 2, flip_weight=(self.up == 1), impl=self.impl)
        # Bias + activation; gain scales both the activation gain and the clamp.
        _, act_gain = activation_defaults(self.activation)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return ops.bias_act(x, b, dim=-1, act=self.activation, gain=act_gain * gain, clamp=clamp,
                            impl=self.impl)


class SynthesisLayer(nn.Module):
    """One style layer of g. StyleGAN2 §2.2 eqs. 1-3, Fig. 2d; StyleGAN1 AdaIN (Fig. 2a/b).

    x: [N, R/up, R/up, I], w: [N, w_dim] -> [N, R, R, out_channels].
    style_mode 'modulate' (StyleGAN2, configs B-F): modulated conv (style s = affine(w), bias
    init 1), noise [N, R, R, 1] times a learned scalar, bias, lrelu * sqrt(2).
    style_mode 'adain' (StyleGAN1 = config A, official `networks_stylegan.G_synthesis`): conv
    (up: nearest 2x, conv, blur [1,2,1]; He gain sqrt(2) in the weights), noise times a learned
    per-channel strength, bias, lrelu, instance norm, then the style y = affine(w) (2 O outputs,
    bias 0): x * (y_s + 1) + y_b. kernel_size 0 (adain only): no conv, the const input's layer.
    """

    out_channels: int  # O
    resolution: int  # R, output resolution of this layer
    kernel_size: int = 3  # k
    up: int = 1  # 2 for the first conv of a block
    use_noise: bool = True  # per-pixel noise input with a learned strength
    activation: str = "lrelu"  # bias_act activation
    resample_filter: Sequence[float] = DEFAULT_FILTER  # FIR taps of the upsampling
    conv_clamp: Optional[float] = None  # clamp to +-conv_clamp * gain
    demodulate: bool = True  # eq. 3 (modulate mode)
    style_mode: str = "modulate"  # 'modulate' (StyleGAN2) | 'adain' (StyleGAN1, config A)
    impl: str = "auto"  # op implementation
    style_split: bool = False  # affine = StyleSplit (StyleGAN-T eq. 1), modulate mode only

    @nn.compact
    def __call__(self, x, w, noise_mode="random", fused_modconv=True, gain=1.0):
        n, i = x.shape[0], x.shape[-1]
        checks.check_shape("SynthesisLayer: x", x, [None, self.resolution // self.up,
                                                     self.resolution // self.up, None])
        if self.style_mode not in STYLE_MODES:
            raise ValueError(f"SynthesisLayer: style_mode must be one of {STYLE_MODES}, got "
                             f"{self.style_mode!r}")
        if self.style_mode == "adain":
            return self._adain(x, w, noise_mode)
        # Style: s = A(w). [N, I]
        styles = style_affine(w, i, self.style_split)
        weight = self.param("weight", _normal, (self.kernel_size, self.kernel_size, i,
                                                self.out_channels))  # [k, k, I, O]
        noise = self._noise(n, noise_mode) if self.use_noise else None
        # Modulate, demodulate, conv (+ up), add noise: eqs. 1-3.
        x = ops.modulated_conv2d(x, weight, styles, noise=noise, up=self.up,
                                 padding=self.kernel_size // 2,
                                 resample_filter=ops.setup_filter(self.resample_filter),
                                 demodulate=self.demodulate, flip_weight=(self.up == 1),
                                 fused_modconv=fused_modconv, impl=self.impl)
        # Bias + lrelu * sqrt(2) * gain, clamp.
        bias = self.param("bias", nn.initializers.zeros, (self.out_channels,))
        _, act_gain = activation_defaults(self.activation)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return ops.bias_act(x, bias, dim=-1, act=self.activation, gain=act_gain * gain,
                            clamp=clamp, impl=self.impl)

    def _adain(self, x, w, noise_mode):
        """StyleGAN1 layer: [conv,] noise, bias, lrelu, instance norm, AdaIN style."""
        i, o, k = x.shape[-1], self.out_channels, self.kernel_size
        if k == 0 and (self.up != 1 or i != o):
            raise ValueError(f"SynthesisLayer: kernel_size 0 (no conv) needs up=1 and "
                             f"in = out channels, got up={self.up}, {i} -> {o}")
        # Conv: nearest 2x up, conv k x k, blur [1,2,1] (official upscale2d_conv2d + blur2d).
        if k:
            weight = self.param("weight", _normal, (k, k, i, o))  # [k, k, I, O]
            if self.up > 1:
                x = ops.upsample2d(x, ops.setup_filter([1] * self.up), up=self.up,
                                   impl=self.impl)
            x = ops.conv2d_resample(x, weight * (np.sqrt(2) * weight_gain(i * k * k)),
                                    padding=k // 2, impl=self.impl)
            if self.up > 1:
                x = ops.filter2d(x, ops.setup_filter(ADAIN_BLUR), impl=self.impl)
        # Noise (per-channel strength), bias, lrelu (gain 1: sqrt(2) sits in the weights).
        noise = self._noise(x.shape[0], noise_mode, channels=o)
        if noise is not None:
            x = x + noise
        bias = self.param("bias", nn.initializers.zeros, (o,))
        x = ops.bias_act(x, bias, dim=-1, act=self.activation, gain=1.0, impl=self.impl)
        # AdaIN (StyleGAN1 eq. 1): y_s,i (x_i - mu(x_i)) / sigma(x_i) + y_b,i, y = A(w).
        styles = EqualizedDense(2 * o, name="affine")(w)  # [N, 2 O]
        scale, shift = styles[:, None, None, :o], styles[:, None, None, o:]
        # In float32 (normalisation), back to the block's compute dtype.
        return (instance_norm(x.astype(jnp.float32)) * (scale + 1.0) + shift).astype(x.dtype)

    def _noise(self, n, noise_mode, channels=None):
        """Noise [N or 1, R, R, 1] scaled by the learned strength phi (StyleGAN2 §2.1: a scalar;
        StyleGAN1: one per channel when `channels` is given), or None."""
        r = self.resolution
        strength = self.param("noise_strength", nn.initializers.zeros,
                              () if channels is None else (channels,))
        const = self.variable(BUFFERS, NOISE_LEAF,
                              lambda: _normal(self.make_rng("params"), (r, r)))
        if noise_mode == "none":
            return None
        if noise_mode == "const":
            return const.value[None, :, :, None] * strength
        if noise_mode != "random":
            raise ValueError(f"SynthesisLayer: noise_mode must be 'random', 'const' or 'none', "
                             f"got {noise_mode!r}")
        if not self.has_rng("noise") and not self.is_initializing():
            raise ValueError("SynthesisLayer: noise_mode='random' needs rngs={'noise': key}")
        key = self.make_rng("noise" if self.has_rng("noise") else "params")
        return jax.random.normal(key, (n, r, r, 1)) * strength


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv to RGB without demodulation, + bias. StyleGAN2 §4.1, App. B.

    x: [N, H, W, I], w: [N, w_dim] -> [N, H, W, out_channels]; styles scaled by 1/sqrt(I k^2).
    """

    out_channels: int  # image channels
    kernel_size: int = 1  # k
    conv_clamp: Optional[float] = None  # clamp the output to +-conv_clamp
    impl: str = "auto"  # op implementation
    style_split: bool = False  # affine = StyleSplit (StyleGAN-T eq. 1)
    weight_init: float = 1.0  # std of the stored weight at init (StyleGAN-T code: 0.1)

    @nn.compact
    def __call__(self, x, w, fused_modconv=True):
        i, k = x.shape[-1], self.kernel_size
        styles = style_affine(w, i, self.style_split) * (1 / np.sqrt(i * k * k))
        weight = self.param("weight", lambda key, shape: _normal(key, shape) * self.weight_init,
                            (k, k, i, self.out_channels))
        x = ops.modulated_conv2d(x, weight, styles, demodulate=False,
                                 fused_modconv=fused_modconv, impl=self.impl)
        bias = self.param("bias", nn.initializers.zeros, (self.out_channels,))
        return ops.bias_act(x, bias, dim=-1, clamp=self.conv_clamp, impl=self.impl)


# Noise buffers (StyleGAN2 B.4: the per-layer const noise maps, noise_mode='const').

def split_noise(variables) -> tuple[dict, dict]:
    """({flat path: noise_const [R, R]}, variables without them); StyleGAN3 has none."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables.get(BUFFERS, {})))
    noise = {p: v for p, v in flat.items() if p[-1] == NOISE_LEAF}
    rest = {p: v for p, v in flat.items() if p[-1] != NOISE_LEAF}
    others = {k: v for k, v in variables.items() if k != BUFFERS}
    return noise, {**others, BUFFERS: flax.traverse_util.unflatten_dict(rest)}


def merge_noise(rest: dict, noise: dict) -> dict:
    """Inverse of split_noise."""
    flat = flax.traverse_util.flatten_dict(rest.get(BUFFERS, {}))
    buffers = flax.traverse_util.unflatten_dict({**flat, **noise})
    return {**rest, BUFFERS: buffers}
