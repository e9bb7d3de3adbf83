"""StyleGAN2 generator and discriminator. Karras et al. 2020, "Analyzing and Improving the Image
Quality of StyleGAN" (spec: shared/spec/stylegan2_and_progan.md part A; code: NVlabs/stylegan3
`training/networks_stylegan2.py`, whose torch names the Flax names follow).

    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024)   # or generator("config-f")
    variables = G.init({"params": key}, z, None)
    img, aux = G.apply(variables, z, None, psi=0.7, noise_mode="const")      # img [N, H, W, C]
    ws = G.apply(variables, z, None, method=G.map)                           # [N, num_ws, w_dim]
    img, aux = G.apply(variables, ws, noise_mode="const", method=G.synthesize)
    logits, aux = D.apply(d_variables, img, c)                               # logits [N]

Collections: `params`; `ema_stats` (`mapping/w_avg`; pass `mutable=["ema_stats"]` with
`update_emas=True`); `buffers` (`synthesis/b<R>/conv<k>/noise_const`, used by noise_mode='const').
noise_mode='random' (the official default) needs `rngs={"noise": key}`.

fused_modconv: True runs the modulated conv as one grouped conv with per-sample weights; False
scales the activations around a shared-weight conv (same result); "auto" picks per backend, dtype
and batch (`use_fused` of ops/modulated_conv2d.py: measured on CPU, the official rule
elsewhere). Under batch sharding (pjit over "batch") the grouped conv's group axis is the
sharded batch, so the trainer uses fused_modconv=False; `fused_modconv_default` is the
per-model default.
"""

from typing import Optional, Sequence, Union

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from gan_zoo import checks, ops
from gan_zoo.models import progan
from gan_zoo.models.stylegan2_discriminator import (
    Discriminator,
    DiscriminatorBlock,
    DiscriminatorEpilogue,
)
from gan_zoo.models.stylegan2_layers import (
    BUFFERS,
    DEFAULT_FILTER,
    EMA,
    Conv2dLayer,
    MappingNetwork,
    SynthesisLayer,
    ToRGBLayer,
    normalize_2nd_moment,
)
from gan_zoo.nn import precision

__all__ = [
    "BUFFERS", "EMA", "VARIANTS", "Conv2dLayer", "Discriminator", "DiscriminatorBlock",
    "DiscriminatorEpilogue", "Generator", "MappingNetwork", "SynthesisBlock", "SynthesisLayer",
    "SynthesisNetwork", "ToRGBLayer", "channels_dict", "discriminator", "generator",
    "normalize_2nd_moment", "num_ws",
]
ARCHITECTURES = ("orig", "skip", "resnet")


def channels_dict(resolutions, channel_base: int, channel_max: int) -> dict:
    """Feature maps per resolution: min(channel_base // res, channel_max) (spec A3.5)."""
    return {res: min(channel_base // res, channel_max) for res in resolutions}


def num_ws(img_resolution: int) -> int:
    """Number of w slots: one per conv plus the last ToRGB = 2 log2(R) - 2 (spec A2)."""
    return 2 * int(np.log2(img_resolution)) - 2


def _check_resolution(name: str, r: int):
    if r < 4 or r & (r - 1):
        raise ValueError(f"{name}: img_resolution must be a power of two >= 4, got {r}")


class SynthesisBlock(nn.Module):
    """One resolution of g: [up-conv,] conv, [ToRGB]. StyleGAN2 Fig. 7 (orig / skip / resnet).

    x: [N, R/2, R/2, I] or None (first block: learned const), img: [N, R/2, R/2, C] or None,
    ws: [N, num_conv + num_torgb, w_dim] -> (x [N, R, R, O], img [N, R, R, C] or None).
    style_mode 'adain' (StyleGAN1, config A): the const gets its own style layer (conv0 of b4,
    const init 1), every conv reads its own w slot and the ToRGB is a plain 1x1 conv (no w).
    """

    in_channels: int  # I, 0 = first block (4x4 const input)
    out_channels: int  # O
    resolution: int  # R
    img_channels: int  # C
    is_last: bool  # the last block always has a ToRGB
    architecture: str = "skip"  # 'orig' | 'skip' | 'resnet' (spec A3.4)
    resample_filter: Sequence[float] = DEFAULT_FILTER  # FIR taps
    conv_clamp: Optional[float] = 256  # clamp conv outputs to +-X; None = off
    use_noise: bool = True  # noise inputs
    demodulate: bool = True  # weight demodulation (config B+)
    style_mode: str = "modulate"  # 'modulate' (StyleGAN2) | 'adain' (StyleGAN1, config A)
    torgb: bool = False  # a ToRGB even when not last ('orig' + progressive growing)
    dtype: str = "float32"  # compute dtype of x (reduced in the num_fp16_res blocks); img: fp32
    impl: str = "auto"  # op implementation

    @property
    def adain(self) -> bool:
        return self.style_mode == "adain"

    @property
    def num_conv(self) -> int:
        """w slots of the style layers (StyleGAN1's const has a style layer of its own)."""
        return 1 if self.in_channels == 0 and not self.adain else 2

    @property
    def has_torgb(self) -> bool:
        return self.is_last or self.torgb or self.architecture == "skip"

    @property
    def num_torgb(self) -> int:
        """w slots of the ToRGB (StyleGAN1's ToRGB is not modulated)."""
        return int(self.has_torgb and not self.adain)

    @nn.compact
    def __call__(self, x, img, ws, noise_mode="random", fused_modconv=True, rgb=True):
        """rgb=False skips the ToRGB (a growing g needs it only at the stage's resolutions)."""
        checks.check_shape(f"SynthesisBlock b{self.resolution}: ws", ws,
                           [None, self.num_conv + self.num_torgb, None])
        layer = dict(resolution=self.resolution, resample_filter=self.resample_filter,
                     conv_clamp=None if self.adain else self.conv_clamp,
                     use_noise=self.use_noise, demodulate=self.demodulate,
                     style_mode=self.style_mode, impl=self.impl)
        call = dict(noise_mode=noise_mode, fused_modconv=fused_modconv)
        dtype = precision.as_dtype(self.dtype)  # float32 params, cast at use (official use_fp16)
        x = None if x is None else x.astype(dtype)
        # Input: learned constant c_1, tiled over the batch (spec A3.1.5; StyleGAN1: init 1 and
        # its own noise + AdaIN layer, official G_synthesis '4x4/Const').
        if self.in_channels == 0:
            init = nn.initializers.ones if self.adain else nn.initializers.normal(1.0)
            const = self.param("const", init,
                               (self.resolution, self.resolution, self.out_channels))
            x = jnp.broadcast_to(const[None].astype(dtype), (ws.shape[0],) + const.shape)
            if self.adain:
                x = SynthesisLayer(self.out_channels, kernel_size=0, name="conv0", **layer)(
                    x, ws[:, 0], **call)
            x = SynthesisLayer(self.out_channels, name="conv1", **layer)(
                x, ws[:, self.num_conv - 1], **call)
        elif self.architecture == "resnet":  # (main + skip) / sqrt(2)
            y = Conv2dLayer(self.out_channels, 1, use_bias=False, up=2,
                            resample_filter=self.resample_filter, impl=self.impl,
                            name="skip")(x, gain=np.sqrt(0.5))
            x = SynthesisLayer(self.out_channels, up=2, name="conv0", **layer)(x, ws[:, 0], **call)
            x = SynthesisLayer(self.out_channels, name="conv1", **layer)(
                x, ws[:, 1], gain=np.sqrt(0.5), **call)
            x = y + x
        else:
            x = SynthesisLayer(self.out_channels, up=2, name="conv0", **layer)(x, ws[:, 0], **call)
            x = SynthesisLayer(self.out_channels, name="conv1", **layer)(x, ws[:, 1], **call)

        # ToRGB and output skips: img = up(img) + tRGB(x) (spec A3.4).
        if img is not None:
            img = ops.upsample2d(img, ops.setup_filter(self.resample_filter), impl=self.impl)
        if self.has_torgb and rgb:
            if self.adain:  # StyleGAN1 ToRGB_lod: 1x1 conv + bias, gain 1
                y = Conv2dLayer(self.img_channels, 1, impl=self.impl, name="torgb")(x)
            else:
                y = ToRGBLayer(self.img_channels, conv_clamp=self.conv_clamp, impl=self.impl,
                               name="torgb")(x, ws[:, self.num_conv], fused_modconv=fused_modconv)
            y = y.astype(jnp.float32)
            img = y if img is None else img + y
        assert x.dtype == dtype, (self.name, x.dtype, dtype)
        return x, img


class SynthesisNetwork(nn.Module):
    """Synthesis network g: ws [N, num_ws, w_dim] -> img [N, R, R, C]. StyleGAN2 §2, §4.

    Block b<R> reads ws[:, i : i + num_conv + num_torgb] and i advances by num_conv, so a ToRGB
    shares its w with the next block's first conv (spec A3.3).

    progressive (configs A-D, 'orig' only): every block has a ToRGB and the static stage
    resolution `res` <= R picks the output, faded in as in ProGAN §2 (official linear
    structure): img = lerp(up_nn(ToRGB_{res/2}), ToRGB_res, alpha) -> [N, res, res, C].
    """

    w_dim: int  # W dimensionality
    img_resolution: int  # R, power of two >= 4
    img_channels: int = 3  # C
    channel_base: int = 32768  # channels = min(channel_base // res, channel_max)
    channel_max: int = 512  # cap on channels
    architecture: str = "skip"  # 'orig' | 'skip' | 'resnet'
    resample_filter: Sequence[float] = DEFAULT_FILTER  # FIR taps
    conv_clamp: Optional[float] = 256  # clamp conv outputs; None = off
    use_noise: bool = True  # noise inputs
    demodulate: bool = True  # weight demodulation
    style_mode: str = "modulate"  # 'modulate' (StyleGAN2) | 'adain' (StyleGAN1, config A)
    progressive: bool = False  # ToRGB per resolution + fade-in (ProGAN-style growing)
    num_fp16_res: int = 0  # the N highest resolutions compute in fp16_dtype (official: 4)
    fp16_dtype: str = "bfloat16"  # reduced dtype: 'bfloat16' | 'float16' | 'float32' | 'auto'
    impl: str = "auto"  # op implementation

    @property
    def block_resolutions(self):
        return [2**i for i in range(2, int(np.log2(self.img_resolution)) + 1)]

    @property
    def num_ws(self) -> int:
        return num_ws(self.img_resolution)

    def _check(self, res):
        _check_resolution("SynthesisNetwork", self.img_resolution)
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"SynthesisNetwork: architecture must be one of {ARCHITECTURES}, "
                             f"got {self.architecture!r}")
        if (self.progressive or self.style_mode == "adain") and self.architecture != "orig":
            raise ValueError(f"SynthesisNetwork: progressive growing and style_mode='adain' "
                             f"need architecture='orig', got {self.architecture!r}")
        if res != self.img_resolution and (not self.progressive
                                           or res not in self.block_resolutions):
            raise ValueError(f"SynthesisNetwork: res={res} needs progressive=True and one of "
                             f"{self.block_resolutions}")

    @nn.compact
    def __call__(self, ws, noise_mode="random", fused_modconv=True, res=None, alpha=1.0):
        res = self.img_resolution if res is None else int(res)
        self._check(res)
        checks.check_shape("SynthesisNetwork: ws", ws, [None, self.num_ws, self.w_dim])
        ws = ws.astype(jnp.float32)
        ch = channels_dict(self.block_resolutions, self.channel_base, self.channel_max)
        init = self.is_initializing()  # init creates every layer whatever `res` is
        x = img = None
        rgb = {}  # ToRGB outputs of a growing g
        w_idx = 0
        for r in self.block_resolutions:
            if r > res and not init:
                break
            block = SynthesisBlock(
                ch[r // 2] if r > 4 else 0, ch[r], r, self.img_channels,
                is_last=r == self.img_resolution, architecture=self.architecture,
                resample_filter=self.resample_filter, conv_clamp=self.conv_clamp,
                use_noise=self.use_noise, demodulate=self.demodulate,
                style_mode=self.style_mode, torgb=self.progressive, impl=self.impl,
                dtype=precision.block_dtype(r, self.img_resolution, self.num_fp16_res,
                                            self.fp16_dtype),
                name=f"b{r}")
            block_ws = ws[:, w_idx:w_idx + block.num_conv + block.num_torgb]
            want = not self.progressive or init or r in (res, res // 2)
            x, img = block(x, None if self.progressive else img, block_ws,
                           noise_mode=noise_mode, fused_modconv=fused_modconv, rgb=want)
            rgb[r] = img
            w_idx += block.num_conv
        if not self.progressive:
            return img
        # Fade-in (ProGAN §2, official G_synthesis linear structure): nearest-upsampled old
        # output blended with the new one; exactly ToRGB_res at alpha = 1.
        img = rgb[res]
        if res > 4:
            old = progan.upsample_nn(rgb[res // 2])
            img = progan.lerp(old, img, jnp.asarray(alpha, img.dtype))
        return img


class Generator(nn.Module):
    """StyleGAN2 generator G = g(f(z, c)). StyleGAN2 §2-4, App. B.

    z: [N, z_dim], c: [N, c_dim] or None -> (img [N, R, R, C], aux {"ws": [N, num_ws, w_dim]}).
    Entry points: __call__, `map` (f with truncation) and `synthesize` (g), for use with
    `apply(..., method=...)`; submodules `mapping` and `synthesis`.
    """

    z_dim: int  # Z dimensionality (512)
    c_dim: int  # label dimensionality, 0 = unconditional
    w_dim: int  # W dimensionality (512)
    img_resolution: int  # R
    img_channels: int = 3  # C
    # Mapping network (spec A2).
    mapping_layers: int = 8  # FC layers of f
    mapping_lr_multiplier: float = 0.01  # lr_mul of f
    embed_features: Optional[int] = None  # label embedding size; None = w_dim
    layer_features: Optional[int] = None  # hidden width of f; None = w_dim
    w_avg_beta: float = 0.998  # w_avg EMA decay (NVlabs/stylegan3 code; the TF code used 0.995)
    # Synthesis network (spec A3).
    channel_base: int = 32768  # 2 * fmap_base of the TF code: 16384 config E, 32768 config F
    channel_max: int = 512  # cap on channels
    architecture: str = "skip"  # 'orig' | 'skip' | 'resnet' (Table 2)
    resample_filter: Sequence[float] = DEFAULT_FILTER  # FIR taps
    conv_clamp: Optional[float] = 256  # clamp conv outputs; None = off
    use_noise: bool = True  # noise inputs
    demodulate: bool = True  # weight demodulation (modulate mode)
    style_mode: str = "modulate"  # 'modulate' (StyleGAN2, B-F) | 'adain' (StyleGAN1, config A)
    progressive: bool = False  # ToRGB per resolution, `res` / `alpha` select the stage (A-D)
    # Modulated conv execution when a call passes none: True (grouped) / False / "auto"
    # (use_fused of ops/modulated_conv2d.py: per backend, dtype and batch). False under batch
    # sharding.
    fused_modconv_default: Union[bool, str, None] = "auto"
    num_fp16_res: int = 0  # the N highest synthesis resolutions in fp16_dtype (official: 4)
    fp16_dtype: str = "bfloat16"  # reduced dtype: 'bfloat16' | 'float16' | 'float32' | 'auto'
    impl: str = "auto"  # op implementation

    def setup(self):
        self.synthesis = SynthesisNetwork(
            self.w_dim, self.img_resolution, self.img_channels, self.channel_base,
            self.channel_max, self.architecture, self.resample_filter, self.conv_clamp,
            self.use_noise, self.demodulate, style_mode=self.style_mode,
            progressive=self.progressive, num_fp16_res=self.num_fp16_res,
            fp16_dtype=self.fp16_dtype, impl=self.impl)
        self.mapping = MappingNetwork(
            self.z_dim, self.c_dim, self.w_dim, num_ws(self.img_resolution),
            num_layers=self.mapping_layers, embed_features=self.embed_features,
            layer_features=self.layer_features, lr_multiplier=self.mapping_lr_multiplier,
            w_avg_beta=self.w_avg_beta)

    @property
    def num_ws(self) -> int:
        return num_ws(self.img_resolution)

    def map(self, z, c=None, psi=1.0, cutoff=None, update_emas=False):
        """f(z, c) with truncation: [N, z_dim] -> ws [N, num_ws, w_dim]."""
        return self.mapping(z, c, psi=psi, cutoff=cutoff, update_emas=update_emas)

    def synthesize(self, ws, noise_mode="random", fused_modconv=None, update_emas=False,
                   res=None, alpha=1.0):
        """g(ws): [N, num_ws, w_dim] -> (img [N, R, R, C], {"ws": ws}). Growing g: `res`
        (static, default R) and the fade-in weight `alpha` give [N, res, res, C]."""
        del update_emas  # StyleGAN2's synthesis has no EMA state.
        fused = self.fused_modconv_default if fused_modconv is None else fused_modconv
        img = self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused, res=res,
                             alpha=alpha)
        return img, {"ws": ws}

    def __call__(self, z, c=None, psi=1.0, cutoff=None, noise_mode="random", update_emas=False,
                 fused_modconv=None, res=None, alpha=1.0):
        ws = self.map(z, c, psi=psi, cutoff=cutoff, update_emas=update_emas)
        return self.synthesize(ws, noise_mode=noise_mode, fused_modconv=fused_modconv, res=res,
                               alpha=alpha)


# Configurations of StyleGAN2 Table 1 (spec A6) at the full size, plus tiny `_test` rows. Model
# switches: architectures, channel_base (config F doubles the maps at 64^2-1024^2), style mode,
# demodulation, progressive growing. Config A is StyleGAN1 (App. B: "the official StyleGAN
# baseline"): AdaIN synthesis, const input with its own style layer, unmodulated ToRGB; B-D use
# the revised G (Fig. 2c/d: modulation + demodulation) with the 'orig' feed-forward G and D. A-D
# grow progressively (one ToRGB / fromRGB per resolution, official linear structure); the growing
# schedule and the other training switches live in configs/stylegan2.py (R1 every step for A-B,
# lazy for C-F; path length for D-F; gamma 100 for E). Deviation: the official config A uses
# StyleGAN1's D_basic, whose down-conv is blur [1,2,1] + conv + 2x2 average pool; here A-D share
# the D_stylegan down-conv ([1,3,3,1] FIR + stride-2 conv) of spec A4.
_BASE = dict(z_dim=512, w_dim=512, img_resolution=1024, mapping_layers=8, channel_base=16384)
_ORIG = dict(_BASE, g_architecture="orig", d_architecture="orig", progressive=True)
VARIANTS = {
    "config-a": dict(_ORIG, style_mode="adain", demodulate=False),
    "config-b": dict(_ORIG, style_mode="modulate", demodulate=True),
    "config-c": dict(_ORIG, style_mode="modulate", demodulate=True),
    "config-d": dict(_ORIG, style_mode="modulate", demodulate=True),
    "config-e": dict(_BASE, g_architecture="skip", d_architecture="resnet", demodulate=True),
    "config-f": dict(_BASE, g_architecture="skip", d_architecture="resnet", channel_base=32768,
                     demodulate=True),
}
_TINY = dict(z_dim=32, w_dim=32, img_resolution=32, mapping_layers=2, channel_base=1024,
             channel_max=64)
VARIANTS.update({f"{k}_test": dict(v, **_TINY) for k, v in VARIANTS.items()
                 if k in ("config-a", "config-b", "config-e", "config-f")})
_G_KEYS = ("z_dim", "w_dim", "img_resolution", "mapping_layers", "channel_base", "channel_max",
           "demodulate", "style_mode", "progressive")
_D_KEYS = ("img_resolution", "channel_base", "channel_max", "progressive")


def _variant(name: str) -> dict:
    if name not in VARIANTS:
        raise ValueError(f"stylegan2: unknown variant {name!r}; expected one of {sorted(VARIANTS)}")
    return VARIANTS[name]


def generator(variant: str, c_dim: int = 0, **overrides) -> Generator:
    """Generator of a VARIANTS row; keyword overrides win (e.g. img_resolution=256)."""
    v = _variant(variant)
    kw = {k: v[k] for k in _G_KEYS if k in v}
    kw.update(architecture=v["g_architecture"], c_dim=c_dim)
    return Generator(**{**kw, **overrides})


def discriminator(variant: str, c_dim: int = 0, **overrides) -> Discriminator:
    """Discriminator of a VARIANTS row; keyword overrides win."""
    v = _variant(variant)
    kw = {k: v[k] for k in _D_KEYS if k in v}
    kw.update(architecture=v["d_architecture"], c_dim=c_dim)
    return Discriminator(**{**kw, **overrides})
