"""StyleGAN-T generator. Sauer et al. 2023, "StyleGAN-T: Unlocking the Power of GANs for Fast
Large-Scale Text-to-Image Synthesis" §3.1, Fig. 3, App. A Table 4 (code: autonomousvision/stylegan-t
`networks/generator.py`); spec ../shared/spec/stylegan_xl_and_t.md §2.2.

StyleGAN2 layers (modulated conv, noise, skip ToRGB, [1,3,3,1] resampling) with: a StyleGAN3
Fourier-feature input at 8^2, StyleSplit affines (eq. 1) on every layer, and `num_res_blocks` x
(plain conv, residual conv with GroupNorm and LayerScale) per block. The text embedding c bypasses
the mapping: w = [f(z), c]; truncation lerps only f(z) toward its EMA `x_avg`.

Layout NHWC. Collections as in `stylegan2_layers`: `params`, `ema_stats` (`x_avg`, written when
update_emas=True, the official train-mode forward), `buffers` (noise_const, Fourier freqs/phases).
"""

from dataclasses import dataclass
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo import checks, ops
from gan_zoo.models.stylegan2_layers import (
    DEFAULT_FILTER,
    EMA,
    SynthesisLayer,
    ToRGBLayer,
    lerp,
    normalize_2nd_moment,
)
from gan_zoo.models.stylegan3 import InputSpec, SynthesisInput
from gan_zoo.nn import EqualizedDense


@dataclass(frozen=True)
class Variant:
    """Generator size (App. A Table 4; num_res_blocks as in the code, spec §2.2 / §6 item 10)."""

    img_resolution: int
    channel_base: int
    channel_max: int
    num_res_blocks: int
    z_dim: int = 64
    c_dim: int = 768  # CLIP ViT-L/14 text embedding


VARIANTS = {
    "lite": Variant(64, 32768, 512, 2),  # 74.6M parameters (spec §2.2)
    "full": Variant(512, 65536, 2048, 3),  # 1020.5M parameters (spec §2.2)
    "tiny": Variant(32, 1024, 64, 1, z_dim=32, c_dim=16),  # = golden net_stylegant_G_res32_text16
    "micro": Variant(16, 512, 32, 1, z_dim=8, c_dim=8),  # CPU tests (GroupNorm: 32 | C)
}


class Mapping(nn.Module):
    """f: z -> x = FC(lrelu) -> FC(linear) of normalize_2nd_moment(z) (spec §2.2, lr mult 0.01);
    w = [lerp(x_avg, x, psi), c] broadcast to num_ws. x_avg <- lerp(mean_N(x), x_avg, beta)."""

    z_dim: int
    c_dim: int
    num_ws: int
    num_layers: int = 2
    lr_multiplier: float = 0.01
    x_avg_beta: float = 0.995

    @nn.compact
    def __call__(self, z, c=None, psi=1.0, update_emas=False):
        checks.check_shape("stylegan_t.Mapping: z", z, [None, self.z_dim])
        x = normalize_2nd_moment(z.astype(jnp.float32))
        x = _MLP(self.z_dim, self.num_layers, self.lr_multiplier, name="mlp")(x)
        x_avg = self.variable(EMA, "x_avg", jnp.zeros, (self.z_dim,), jnp.float32)
        if update_emas and not self.is_initializing():
            x_avg.value = lerp(jnp.mean(jax.lax.stop_gradient(x), axis=0), x_avg.value,
                               self.x_avg_beta)
        if not (isinstance(psi, (int, float)) and psi == 1):
            x = lerp(x_avg.value, x, psi)  # truncation of the z part only
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"stylegan_t.Mapping: c_dim={self.c_dim} needs a text "
                                 f"embedding c [N, {self.c_dim}]")
            checks.check_shape("stylegan_t.Mapping: c", c, [z.shape[0], self.c_dim])
            x = jnp.concatenate([x, c.astype(jnp.float32)], axis=1)
        return jnp.broadcast_to(x[:, None], (x.shape[0], self.num_ws, x.shape[1]))


class _MLP(nn.Module):
    features: int
    num_layers: int
    lr_multiplier: float

    @nn.compact
    def __call__(self, x):
        for idx in range(self.num_layers):
            act = "linear" if idx == self.num_layers - 1 else "lrelu"
            x = EqualizedDense(self.features, activation=act, lr_multiplier=self.lr_multiplier,
                               name=f"fc{idx}")(x)
        return x


class ResidualLayer(nn.Module):
    """Residual conv, spec §2.2 [C]: x' = GN(x) (32 groups, eps 1e-5, float32);
    y = gamma * layer(x'); out = sqrt(2) (x' + y). gamma per channel, init 1e-5 (LayerScale)."""

    resolution: int
    conv_clamp: Optional[float] = 256
    gn_groups: int = 32
    layer_scale_init: float = 1e-5
    impl: str = "auto"

    @nn.compact
    def __call__(self, x, w, noise_mode="random", fused_modconv=True, gain=1.0):
        c, dtype = x.shape[-1], x.dtype
        x = nn.GroupNorm(num_groups=self.gn_groups, epsilon=1e-5, dtype=jnp.float32,
                         use_fast_variance=False, name="norm")(x.astype(jnp.float32)).astype(dtype)
        y = SynthesisLayer(c, self.resolution, conv_clamp=self.conv_clamp, style_split=True,
                           impl=self.impl, name="conv")(x, w, noise_mode, fused_modconv, gain)
        gamma = self.param("gamma", nn.initializers.constant(self.layer_scale_init), (c,))
        return ((gamma * y).astype(dtype) + x) * np.sqrt(2)


class SynthesisBlock(nn.Module):
    """Block at resolution R: Fourier input (first block) or conv0 (up 2, gain 1), then
    num_res_blocks x (conv, residual conv), both with gain sqrt(0.5); ToRGB added to the
    upsampled skip image. ws: [N, num_conv + num_torgb, w_dim]."""

    in_channels: int  # 0 = first block
    out_channels: int
    resolution: int
    img_channels: int
    is_last: bool
    num_res_blocks: int
    architecture: str = "skip"
    conv_clamp: Optional[float] = 256
    impl: str = "auto"

    @property
    def num_conv(self):
        return 1 + 2 * self.num_res_blocks

    @property
    def num_torgb(self):
        return int(self.is_last or self.architecture == "skip")

    @nn.compact
    def __call__(self, x, img, ws, noise_mode="random", fused_modconv=True):
        ws = [ws[:, i] for i in range(ws.shape[1])]
        r, o, kw = self.resolution, self.out_channels, dict(impl=self.impl)
        if self.in_channels == 0:
            x = SynthesisInput(InputSpec(o, r, r, 2), name="input")(ws[0])
        else:
            x = SynthesisLayer(o, r, up=2, conv_clamp=self.conv_clamp, style_split=True,
                               name="conv0", **kw)(x, ws[0], noise_mode, fused_modconv)
        g = np.sqrt(0.5)
        for j in range(2 * self.num_res_blocks):
            layer = ResidualLayer(r, self.conv_clamp, name=f"convs1_{j}", **kw) if j % 2 else \
                SynthesisLayer(o, r, conv_clamp=self.conv_clamp, style_split=True,
                               name=f"convs1_{j}", **kw)
            x = layer(x, ws[1 + j], noise_mode, fused_modconv, g)
        if img is not None:
            img = ops.upsample2d(img, ops.setup_filter(DEFAULT_FILTER), **kw)
        if self.num_torgb:
            y = ToRGBLayer(self.img_channels, conv_clamp=self.conv_clamp, style_split=True,
                           weight_init=0.1, name="torgb", **kw)(x, ws[-1], fused_modconv)
            y = y.astype(jnp.float32)
            img = y if img is None else img + y
        return x, img


def block_channels(img_resolution, channel_base, channel_max, base_mult=3) -> dict:
    """{resolution: channels}, ch(r) = min(channel_base / r, channel_max), r = 8 .. R."""
    res = [2 ** i for i in range(base_mult, int(np.log2(img_resolution)) + 1)]
    return {r: min(channel_base // r, channel_max) for r in res}


class Synthesis(nn.Module):
    """g: ws [N, num_ws, w_dim] -> img [N, R, R, C]; block b_r reads ws[w_idx : w_idx + num_conv
    + num_torgb] and advances w_idx by num_conv (its ToRGB shares a w with the next conv0)."""

    img_resolution: int
    img_channels: int
    channel_base: int
    channel_max: int
    num_res_blocks: int
    architecture: str = "skip"
    conv_clamp: Optional[float] = 256
    impl: str = "auto"

    @nn.compact
    def __call__(self, ws, noise_mode="random", fused_modconv=True):
        x = img = None
        w_idx, prev = 0, 0
        r_out = self.img_resolution
        for res, c in block_channels(r_out, self.channel_base, self.channel_max).items():
            blk = SynthesisBlock(prev, c, res, self.img_channels, res == r_out,
                                 self.num_res_blocks, self.architecture, self.conv_clamp,
                                 self.impl, name=f"b{res}")
            n = blk.num_conv
            x, img = blk(x, img, ws[:, w_idx:w_idx + n + blk.num_torgb], noise_mode,
                         fused_modconv)
            w_idx, prev = w_idx + n, c
        return img


class Generator(nn.Module):
    """StyleGAN-T G(z, c) -> (img [N, R, R, C], {"ws": ws}). c: text embedding [N, c_dim]."""

    z_dim: int = 64
    c_dim: int = 768
    img_resolution: int = 64
    img_channels: int = 3
    channel_base: int = 32768
    channel_max: int = 512
    num_res_blocks: int = 2
    architecture: str = "skip"
    conv_clamp: Optional[float] = 256
    mapping_layers: int = 2
    x_avg_beta: float = 0.995
    impl: str = "auto"

    def setup(self):
        r = self.img_resolution
        if r < 8 or r & (r - 1):
            raise ValueError(f"stylegan_t.Generator: img_resolution must be a power of 2 >= 8, "
                             f"got {r}")
        if self.architecture not in ("skip", "orig"):
            raise ValueError(f"stylegan_t.Generator: architecture must be 'skip' or 'orig', "
                             f"got {self.architecture!r}")
        self.mapping = Mapping(self.z_dim, self.c_dim, self.num_ws, self.mapping_layers,
                               x_avg_beta=self.x_avg_beta)
        self.synthesis = Synthesis(self.img_resolution, self.img_channels, self.channel_base,
                                   self.channel_max, self.num_res_blocks, self.architecture,
                                   self.conv_clamp, self.impl)

    @property
    def w_dim(self):
        return self.z_dim + self.c_dim

    @property
    def num_ws(self):
        n = len(block_channels(self.img_resolution, self.channel_base, self.channel_max))
        return n * (1 + 2 * self.num_res_blocks) + 1

    def map(self, z, c=None, psi=1.0, cutoff=None, update_emas=False):
        """w = [f(z) truncated toward x_avg, c]: [N, z_dim] -> ws [N, num_ws, w_dim]."""
        if cutoff is not None:
            raise ValueError("stylegan_t.Generator: truncation has no layer cutoff (all ws)")
        return self.mapping(z, c, psi=psi, update_emas=update_emas)

    def synthesize(self, ws, noise_mode="random", fused_modconv=None, update_emas=False):
        """g(ws): [N, num_ws, w_dim] -> (img [N, R, R, C], {"ws": ws})."""
        checks.check_shape("stylegan_t.Generator: ws", ws, [None, self.num_ws, self.w_dim])
        fused = True if fused_modconv is None else fused_modconv
        img = self.synthesis(ws.astype(jnp.float32), noise_mode, fused)
        return img, {"ws": ws}

    def __call__(self, z, c=None, psi=1.0, cutoff=None, noise_mode="random", update_emas=False,
                 fused_modconv=None):
        ws = self.map(z, c, psi=psi, cutoff=cutoff, update_emas=update_emas)
        return self.synthesize(ws, noise_mode=noise_mode, fused_modconv=fused_modconv)


def generator(variant: str = "lite", **overrides) -> Generator:
    """Generator of a VARIANTS entry (fields overridable)."""
    if variant not in VARIANTS:
        raise ValueError(f"stylegan_t: unknown variant {variant!r}, expected one of "
                         f"{sorted(VARIANTS)}")
    v = VARIANTS[variant]
    return Generator(**{**vars(v), **overrides})
