"""ProGAN generator and discriminator with progressive growing. Karras et al. 2018, §2-4, App. A.1
(spec stylegan2_and_progan.md Part B; official code: tkarras/progressive_growing_of_gans
`networks.py`, G_paper / D_paper).

Both networks are built for their final resolution and hold ALL layers from 4x4 up to it, so the
parameter tree (and an optimizer state built on it) never changes while the networks grow. The
resolution being trained is a static call argument `res` (each value traces its own step); the
fade-in weight `alpha` is a traced scalar in [0, 1]:

    G:  img = lerp(up_nn(toRGB_{res/2}(h_{res/2})), toRGB_res(block_res(h_{res/2})), alpha)
    D:  h   = lerp(fromRGB_{res/2}(avgpool(x)), block_res(fromRGB_res(x)), alpha)

Parameter names depend only on the resolution a layer belongs to ("b64", "torgb64"), never on
`res`. Label conditioning follows the official code (the spec is silent): G concatenates the
one-hot label to z, D's last dense has 1 + n_classes outputs (score and AC-GAN class logits).
"""

import math
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_zoo import checks
from gan_zoo.nn import EqualizedConv, EqualizedDense, pixel_norm, precision
from gan_zoo.ops import minibatch_std

SQRT2 = math.sqrt(2.0)

# Variants are data. Channels at resolution 2^k: nf(k - 1) = min(fmap_base / 2^(k-1), fmap_max).
VARIANTS = {
    # PG Table 2 (App. A.1): CelebA-HQ 1024^2, 512 ... 16 maps, G 23.07M / D 23.07M (spec B3/B4).
    "celebahq-1024": dict(resolution=1024, fmap_base=8192, fmap_max=512, latent_size=512,
                          mbstd_group_size=16),
    # Lower resolutions leave out the top blocks of Table 2 (App. A.2); LSUN runs at 256^2
    # (§6.4), CIFAR-10 grows to 32^2 with the CelebA network (§6.5).
    "lsun-256": dict(resolution=256, fmap_base=8192, fmap_max=512, latent_size=512,
                     mbstd_group_size=16),
    "celeba-128": dict(resolution=128, fmap_base=8192, fmap_max=512, latent_size=512,
                       mbstd_group_size=16),
    "cifar10-32": dict(resolution=32, fmap_base=8192, fmap_max=512, latent_size=512,
                       mbstd_group_size=16),
    # Table 1 lower-capacity network (App. A.2, spec B10): 4: 512, 8: 512, 16: 256, ..., 128: 32.
    "ablation-128": dict(resolution=128, fmap_base=2048, fmap_max=512, latent_size=512,
                         mbstd_group_size=16),
    # Tests only: tiny widths.
    "_test": dict(resolution=16, fmap_base=64, fmap_max=16, latent_size=8, mbstd_group_size=4),
    "_test32": dict(resolution=32, fmap_base=64, fmap_max=16, latent_size=8, mbstd_group_size=4),
}


def nf(stage: int, fmap_base: int, fmap_max: int) -> int:
    """Feature maps of a stage, min(fmap_base / 2^stage, fmap_max) (official `nf`, spec B3)."""
    return min(int(fmap_base / (2.0 ** stage)), fmap_max)


def channels(res: int, fmap_base: int, fmap_max: int) -> int:
    """Feature maps of the layers at resolution `res` (4 -> stage 1, 8 -> stage 2, ...)."""
    return nf(int(math.log2(res)) - 1, fmap_base, fmap_max)


def resolutions(final: int) -> tuple:
    """(4, 8, ..., final). Raises ValueError unless final is a power of two >= 4."""
    if final < 4 or final & (final - 1):
        raise ValueError(f"ProGAN: resolution must be a power of two >= 4, got {final}")
    return tuple(2 ** k for k in range(2, int(math.log2(final)) + 1))


def upsample_nn(x):
    """2x nearest-neighbour upsampling (2x2 copies), PG Fig. 2. [N, H, W, C] -> [N, 2H, 2W, C]"""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def avgpool2(x):
    """2x2 average pooling, PG App. A.1. [N, H, W, C] -> [N, H/2, W/2, C]."""
    n, h, w, c = x.shape
    return jnp.mean(x.reshape(n, h // 2, 2, w // 2, 2, c), axis=(2, 4))


def downscale_to(x, res: int):
    """Repeated 2x2 average pooling of x [N, R, R, C] down to [N, res, res, C] (R = res * 2^k)."""
    while x.shape[1] > res:
        x = avgpool2(x)
    return x


def lerp(a, b, t):
    """(1 − t)·a + t·b, the fade-in blend of old and new paths (PG §2, Fig. 2); exact at t=0, 1."""
    return (1.0 - t) * a + t * b


def _check_res(name: str, res: int, final: int) -> int:
    if res is None:
        return final
    if res not in resolutions(final):
        raise ValueError(f"{name}: res must be one of {resolutions(final)}, got {res}")
    return res


def _conv(features: int, kernel: int = 3, name: Optional[str] = None, act: str = "lrelu",
          he_gain: float = SQRT2, padding="SAME", dtype: str = "float32",
          clamp: Optional[float] = None):
    """Equalized-lr conv + lrelu(0.2), no activation gain (ProGAN §4.1: sqrt(2) in the weights),
    computing in `dtype` (float32 params cast at use) with an optional output clamp."""
    return EqualizedConv(features, kernel, padding=padding, he_gain=he_gain, activation=act,
                         act_gain=1.0, clamp=clamp, dtype=precision.as_dtype(dtype), name=name)


def _dense(features: int, he_gain: float, act: str, name: str):
    return EqualizedDense(features, he_gain=he_gain, activation=act, act_gain=1.0, name=name)


class GBlock(nn.Module):
    """Generator block for resolution 2R: up_nn -> [Conv 3x3, lrelu, PN] x 2. PG Table 2 (left).

    x: [N, R, R, I] -> [N, 2R, 2R, features]. The channel change happens in the first conv.
    """

    features: int  # output channels nf(res)
    use_pixelnorm: bool = True  # pixelwise feature normalisation after each conv (PG §4.2)
    dtype: str = "float32"  # compute dtype (reduced in the num_fp16_res blocks)
    conv_clamp: Optional[float] = None  # clamp conv outputs to +-conv_clamp; None = off

    @nn.compact
    def __call__(self, x):
        pn = pixel_norm if self.use_pixelnorm else (lambda v: v)  # float32 inside
        conv = dict(dtype=self.dtype, clamp=self.conv_clamp)
        x = upsample_nn(x.astype(precision.as_dtype(self.dtype)))  # nearest 2x (PG App. A.1)
        x = pn(_conv(self.features, name="conv0", **conv)(x))
        return pn(_conv(self.features, name="conv1", **conv)(x))


class DBlock(nn.Module):
    """Discriminator block at resolution R: [Conv 3x3, lrelu] x 2 -> avgpool2. PG Table 2 (right).

    x: [N, R, R, I] -> [N, R/2, R/2, features]. The channel change happens in the second conv.
    """

    features: int  # output channels nf(res / 2)
    dtype: str = "float32"  # compute dtype (reduced in the num_fp16_res blocks)
    conv_clamp: Optional[float] = None  # clamp conv outputs to +-conv_clamp; None = off

    @nn.compact
    def __call__(self, x):
        conv = dict(dtype=self.dtype, clamp=self.conv_clamp)
        x = _conv(x.shape[-1], name="conv0", **conv)(x.astype(precision.as_dtype(self.dtype)))
        x = _conv(self.features, name="conv1", **conv)(x)
        return avgpool2(x)  # conv + avgpool == the official fused 4x4 stride-2 conv


class Generator(nn.Module):
    """ProGAN generator. PG §2, §4, Table 2; spec B2, B3, B5, B6.

    z: [N, latent_size], labels: [N] int (n_classes > 0) -> (images [N, res, res, 3], aux).
    aux: "features" (last block's features [N, res, res, C]), "rgb_new" / "rgb_old" (the two
    fade-in branches, the old one upsampled; absent at res 4).
    """

    resolution: int = 1024  # final output resolution (power of two)
    latent_size: int = 512  # z dimension
    n_classes: int = 0  # label conditioning (0: unconditional); one-hot concatenated to z
    fmap_base: int = 8192  # nf(stage) = min(fmap_base / 2^stage, fmap_max)
    fmap_max: int = 512
    num_channels: int = 3  # RGB
    normalize_latents: bool = True  # pixel-norm z onto the hypersphere (PG App. A.1, [code])
    use_pixelnorm: bool = True  # PN after every conv / the first dense (PG §4.2)
    num_fp16_res: int = 0  # the N highest resolutions compute in fp16_dtype (StyleGAN2-ADA rule)
    fp16_dtype: str = "bfloat16"  # reduced dtype: 'bfloat16' | 'float16' | 'float32' | 'auto'
    conv_clamp: Optional[float] = None  # clamp block / toRGB convs (not in PG); None = off

    def _nf(self, res):
        return channels(res, self.fmap_base, self.fmap_max)

    def _prec(self, res) -> dict:
        return _precision(self, res)

    @nn.compact
    def __call__(self, z, labels=None, *, res: Optional[int] = None, alpha=1.0):
        res = _check_res("Generator", res, self.resolution)
        checks.check_shape("Generator: z", z, (None, self.latent_size))
        pn = pixel_norm if self.use_pixelnorm else (lambda v: v)
        all_res = resolutions(self.resolution)
        blocks = {r: GBlock(self._nf(r), self.use_pixelnorm, conv_clamp=self.conv_clamp,
                            dtype=self._prec(r)["dtype"], name=f"b{r}") for r in all_res[1:]}
        torgb = {r: _conv(self.num_channels, 1, f"torgb{r}", "linear", 1.0, **self._prec(r))
                 for r in all_res}
        # Latent (+ one-hot label), normalised onto the hypersphere (PG App. A.1).
        x = _with_labels("Generator", z.astype(jnp.float32), labels, self.n_classes)
        x = pixel_norm(x) if self.normalize_latents else x
        # 4x4: "Conv 4x4" = dense 512 -> 16 * 512 with gain sqrt(2)/4, then Conv 3x3.
        c4 = self._nf(4)
        h = _dense(16 * c4, SQRT2 / 4, "lrelu", "dense")(x)
        h = pn(h.reshape(-1, 4, 4, c4))  # [N, 4, 4, C]
        h = pn(_conv(c4, name="conv4")(h))
        # Grow: one block per doubling; keep the previous features for the fade-in branch.
        h_prev = h
        for r in all_res[1:all_res.index(res) + 1]:
            h_prev, h = h, blocks[r](h)
        img = torgb[res](h).astype(jnp.float32)  # images, fade-in and losses in float32
        aux = {"features": h}
        if res > 4:  # Fade-in: lerp(up_nn(toRGB_{res/2}(h_prev)), toRGB_res(h), alpha).
            old = upsample_nn(torgb[res // 2](h_prev).astype(jnp.float32))
            aux.update(rgb_old=old, rgb_new=img)
            img = lerp(old, img, jnp.asarray(alpha, img.dtype))
        if self.is_initializing():  # create every layer's params whatever `res` is
            _touch(blocks, torgb, res, self._nf, grow=True)
        return img, aux


class Discriminator(nn.Module):
    """ProGAN discriminator (WGAN critic). PG §2, §3, Table 2; spec B2, B4, B5, B7.

    x: [N, res, res, 3], labels unused by the forward pass -> (scores [N], aux).
    aux: "class_logits" [N, n_classes] (AC-GAN head, n_classes > 0), "features" (the 4x4
    features after the blocks, before mbstd).
    """

    resolution: int = 1024  # final input resolution
    n_classes: int = 0  # AC-GAN label head size (0: none)
    fmap_base: int = 8192
    fmap_max: int = 512
    mbstd_group_size: int = 16  # PG §3; [code] preset-v1 16 (whole minibatch up to 16)
    mbstd_num_features: int = 1  # one averaged statistic (PG §3)
    num_fp16_res: int = 0  # the N highest resolutions compute in fp16_dtype (StyleGAN2-ADA rule)
    fp16_dtype: str = "bfloat16"  # reduced dtype: 'bfloat16' | 'float16' | 'float32' | 'auto'
    conv_clamp: Optional[float] = None  # clamp block / fromRGB convs (not in PG); None = off

    def _nf(self, res):
        return channels(res, self.fmap_base, self.fmap_max)

    def _prec(self, res) -> dict:
        return _precision(self, res)

    @nn.compact
    def __call__(self, x, labels=None, *, res: Optional[int] = None, alpha=1.0):
        del labels  # AC-GAN: labels enter the loss, not the critic
        res = _check_res("Discriminator", res, self.resolution)
        checks.check_shape("Discriminator: x", x, (None, res, res, None))
        all_res = resolutions(self.resolution)
        blocks = {r: DBlock(self._nf(r // 2), conv_clamp=self.conv_clamp,
                            dtype=self._prec(r)["dtype"], name=f"b{r}") for r in all_res[1:]}
        fromrgb = {r: _conv(self._nf(r), 1, f"fromrgb{r}", **self._prec(r)) for r in all_res}
        x = x.astype(jnp.float32)
        h = fromrgb[res](x)
        if res > 4:  # Fade-in: lerp(fromRGB_{res/2}(avgpool(x)), block_res(fromRGB_res(x)), alpha).
            old = fromrgb[res // 2](avgpool2(x))
            h = lerp(old, blocks[res](h), jnp.asarray(alpha, h.dtype))
        for r in reversed(all_res[1:all_res.index(res)]):
            h = blocks[r](h)
        h = h.astype(jnp.float32)  # the 4x4 epilogue runs in float32
        aux = {"features": h}  # [N, 4, 4, C]
        # Epilogue at 4x4: mbstd -> Conv 3x3 -> "Conv 4x4" (= dense 16C -> nf(0)) -> dense.
        h = minibatch_std(h, self.mbstd_group_size, self.mbstd_num_features)
        h = _conv(self._nf(4), name="conv4")(h)
        h = _dense(nf(0, self.fmap_base, self.fmap_max), SQRT2, "lrelu", "dense0")(
            h.reshape(h.shape[0], -1))
        out = _dense(1 + self.n_classes, 1.0, "linear", "dense1")(h)  # [N, 1 + n_classes]
        if self.n_classes:
            aux["class_logits"] = out[:, 1:]
        if self.is_initializing():
            _touch(blocks, fromrgb, res, self._nf, grow=False)
        return out[:, 0], aux


def _with_labels(name: str, z, labels, n_classes: int):
    """[z, one_hot(labels)] (official G_paper: concat(latents, labels)); z if unconditional."""
    if n_classes == 0:
        return z
    if labels is None:
        raise ValueError(f"{name}: n_classes={n_classes} needs labels [N] (int)")
    checks.check_shape(f"{name}: labels", labels, (z.shape[0],))
    return jnp.concatenate([z, jax.nn.one_hot(labels, n_classes, dtype=z.dtype)], axis=-1)


def _precision(net, res: int) -> dict:
    """{dtype, clamp} of the layers at resolution `res` of a ProGAN G or D: the num_fp16_res
    highest resolutions (StyleGAN2-ADA rule, `precision.block_dtype`) in fp16_dtype."""
    dtype = precision.block_dtype(res, net.resolution, net.num_fp16_res, net.fp16_dtype)
    return dict(dtype=dtype, clamp=net.conv_clamp)


def _touch(blocks: dict, rgb: dict, res: int, nf_fn, grow: bool):
    """At init only: run every layer the current `res` skipped on a [1, 1, 1, C] dummy so that
    all parameters exist from the start (their shapes do not depend on spatial size)."""
    used_rgb = {res, res // 2}
    for r, layer in rgb.items():
        if r not in used_rgb:
            layer(jnp.zeros((1, 1, 1, nf_fn(r) if grow else 3), jnp.float32))
    for r, block in blocks.items():
        if r > res:
            c_in = nf_fn(r // 2) if grow else nf_fn(r)
            block(jnp.zeros((1, 2, 2, c_in), jnp.float32))


def make_generator(variant: str = "celebahq-1024", n_classes: int = 0, **overrides) -> Generator:
    """Generator for a VARIANTS row; `overrides` replace row values or set other fields."""
    v = {**_variant(variant), **overrides}
    v.pop("mbstd_group_size")
    return Generator(n_classes=n_classes, **v)


def make_discriminator(variant: str = "celebahq-1024", n_classes: int = 0,
                       **overrides) -> Discriminator:
    """Discriminator for a VARIANTS row; `overrides` replace row values or set other fields."""
    v = {**_variant(variant), **overrides}
    v.pop("latent_size")
    return Discriminator(n_classes=n_classes, **v)


def _variant(name: str) -> dict:
    if name not in VARIANTS:
        raise ValueError(f"ProGAN: unknown variant {name!r}; known: {sorted(VARIANTS)}")
    return VARIANTS[name]
