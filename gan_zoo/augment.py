"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"),
and ADA's `bgc` pipeline and p update (Karras et al. 2020; the ADA section below).

DiffAugment is the one source of truth for StyleGAN-XL's projected D (spec stylegan_xl_and_t.md
§1.4, input path step 1) and StyleGAN-T's D (§2.4: "default parameters"). Semantics of the official
`training/diffaug.py` of autonomousvision/stylegan-xl (identical in stylegan-t), images NHWC in
the official value range ([-1, 1]); every draw is per sample, uniform:

1. color = brightness, saturation, contrast, in that order:
   - brightness: x + (u - 0.5), u ~ U[0, 1);
   - saturation: (x - mean_C(x)) * 2u + mean_C(x)  (mean over the channel axis, per pixel);
   - contrast:   (x - mean_HWC(x)) * (u + 0.5) + mean_HWC(x)  (mean over the whole image).
2. translation (ratio 1/8): s = int(size * ratio + 0.5) per axis; integer shifts t ~ U{-s..s}
   drawn independently for H and W; out[i, j] = x[i + t_h, j + t_w], zero outside the image.
3. cutout (ratio 0.2 in the StyleGAN-XL/-T code; the original DiffAugment used 0.5): one square of
   side c = int(size * ratio + 0.5) per axis, centre o ~ U{0..size - c % 2}, rows
   [o - c // 2, o - c // 2 + c) intersected with the image, set to 0 (all channels).

`fill` (default 0, the official value) replaces that 0 in translation and cutout. An extension, not
in the official code: in [-1, 1] a 0 is mid-grey, so on a black background (the CPU `digits`,
background -1) the zero-filled bars and squares are a contrast D can use that the data never has;
fill=-1 keeps augmented images on the data's background.

All functions are pure: (key, x [N, H, W, C]) -> same shape and dtype; the same key gives the same
output. Draws are float32 and cast to x.dtype.
"""

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo import checks, ops

TRANSLATION_RATIO = 0.125  # DiffAugment `rand_translation` default
CUTOUT_RATIO = 0.2  # stylegan-xl / stylegan-t `rand_cutout` default (original DiffAugment: 0.5)
DEFAULT_POLICY = ("color", "translation", "cutout")  # projected D (spec §1.4, §2.4)


def _uniform(key, x):
    """u ~ U[0, 1) per sample, shaped [N, 1, 1, 1] for broadcasting."""
    return jax.random.uniform(key, (x.shape[0], 1, 1, 1), jnp.float32)


def rand_brightness(key, x):
    """x + (u - 0.5). DiffAugment `rand_brightness`."""
    return (x + (_uniform(key, x) - 0.5)).astype(x.dtype)


def rand_saturation(key, x):
    """(x - mean_C) * 2u + mean_C, mean over channels. DiffAugment `rand_saturation`."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    return ((x - mean) * (_uniform(key, x) * 2) + mean).astype(x.dtype)


def rand_contrast(key, x):
    """(x - mean_HWC) * (u + 0.5) + mean_HWC. DiffAugment `rand_contrast`."""
    mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    return ((x - mean) * (_uniform(key, x) + 0.5) + mean).astype(x.dtype)


def max_shift(size: int, ratio: float = TRANSLATION_RATIO) -> int:
    """s = int(size * ratio + 0.5): the largest translation in pixels along an axis of `size`."""
    return int(size * ratio + 0.5)


def translate(x, shift_h, shift_w, max_h: int, max_w: int, fill: float = 0.0):
    """out[n, i, j] = x[n, i + shift_h[n], j + shift_w[n]], `fill` outside; |shift| <= max_*."""
    _, h, w, _ = x.shape
    pad = jnp.pad(x, ((0, 0), (max_h, max_h), (max_w, max_w), (0, 0)), constant_values=fill)

    def one(img, th, tw):  # img [H + 2 max_h, W + 2 max_w, C]
        return jax.lax.dynamic_slice(img, (th + max_h, tw + max_w, 0), (h, w, img.shape[-1]))
    return jax.vmap(one)(pad, shift_h, shift_w)


def rand_translation(key, x, ratio: float = TRANSLATION_RATIO, fill: float = 0.0):
    """Integer translation by up to int(size * ratio + 0.5) px per axis, `fill` padding."""
    n, h, w, _ = x.shape
    sh, sw = max_shift(h, ratio), max_shift(w, ratio)
    kh, kw = jax.random.split(key)
    th = jax.random.randint(kh, (n,), -sh, sh + 1)
    tw = jax.random.randint(kw, (n,), -sw, sw + 1)
    return translate(x, th, tw, sh, sw, fill)


def cutout_size(size: int, ratio: float = CUTOUT_RATIO) -> int:
    """c = int(size * ratio + 0.5): the cutout side along an axis of `size`."""
    return int(size * ratio + 0.5)


def cutout_mask(offset_h, offset_w, h: int, w: int, ch: int, cw: int):
    """[N, H, W, 1] mask, 0 on rows [o_h - ch//2, o_h - ch//2 + ch) x the same for columns."""
    rows = jnp.arange(h)[None, :, None, None]
    cols = jnp.arange(w)[None, None, :, None]
    top = (offset_h - ch // 2)[:, None, None, None]
    left = (offset_w - cw // 2)[:, None, None, None]
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return jnp.where(inside, 0.0, 1.0)


def rand_cutout(key, x, ratio: float = CUTOUT_RATIO, fill: float = 0.0):
    """Set one square of side int(size * ratio + 0.5), uniform centre, to `fill` (DiffAugment
    cutout: 0)."""
    n, h, w, _ = x.shape
    ch, cw = cutout_size(h, ratio), cutout_size(w, ratio)
    kh, kw = jax.random.split(key)
    # torch.randint(0, size + (1 - c % 2)): the upper bound is exclusive.
    oh = jax.random.randint(kh, (n,), 0, h + (1 - ch % 2))
    ow = jax.random.randint(kw, (n,), 0, w + (1 - cw % 2))
    keep = cutout_mask(oh, ow, h, w, ch, cw).astype(x.dtype)
    return (x * keep + fill * (1 - keep)).astype(x.dtype)


def check_policy(policy: Sequence[str] | str, where: str = "diff_augment") -> tuple[str, ...]:
    """A policy (names or the official comma string; "" = none) -> its tuple of names; a
    ValueError naming `where` (e.g. the config field) for anything else."""
    names = tuple(p for p in policy.split(",") if p) if isinstance(policy, str) else policy
    unknown = ([p for p in names if p not in AUGMENT_FNS] if isinstance(names, (tuple, list))
               else [names])
    if unknown:
        raise ValueError(f"{where}={policy!r}: unknown policy entries {unknown}; known: "
                         f"{sorted(AUGMENT_FNS)}")
    return tuple(names)


def diff_augment(key, x, policy: Sequence[str] | str = DEFAULT_POLICY,
                 translation_ratio: float = TRANSLATION_RATIO, cutout_ratio: float = CUTOUT_RATIO,
                 fill: float = 0.0):
    """DiffAugment of images x [N, H, W, C] (any range; the GANs pass [-1, 1]), per-sample draws.

    policy: names from AUGMENT_FNS in application order (or the official comma string
    "color,translation,cutout"). Each op draws from fold_in(key, its index in the op list).
    fill: the value of translation's padding and of cutout's square (official: 0).
    """
    checks.check_rank("diff_augment: x", x, 4, "[N, H, W, C]")
    ratios = {rand_translation: translation_ratio, rand_cutout: cutout_ratio}
    fns = [f for p in check_policy(policy) for f in AUGMENT_FNS[p]]
    for i, fn in enumerate(fns):
        k = jax.random.fold_in(key, i)
        x = fn(k, x, ratios[fn], fill) if fn in ratios else fn(k, x)
    return x


AUGMENT_FNS = {
    "color": (rand_brightness, rand_saturation, rand_contrast),
    "translation": (rand_translation,),
    "cutout": (rand_cutout,),
}


# ---------------------------------------------------------------------------------------------
# ADA: adaptive discriminator augmentation (Karras et al., NeurIPS 2020, "Training Generative
# Adversarial Networks with Limited Data" = "ADA" below; official `training/augment.py` and
# `training_loop.py` of NVlabs/stylegan3). Images NHWC, any value range (the GANs pass [-1, 1]).
#
# Per sample, each enabled transform is drawn with probability (multiplier · p) (ADA §2.3, App.
# B). Geometric transforms compose one inverse 2-D homogeneous matrix G_inv (output pixel ->
# input pixel, pixel units, origin at the image centre), executed once: reflect padding, 2x
# upsampling with the sym6 wavelet, bilinear sampling (zeros outside), 2x downsampling. Colour
# transforms compose one 4x4 matrix C acting on (r, g, b, 1). Differentiable w.r.t. the images
# (the random parameters are constants), so G gets gradients through D's augmented input.
# Decision: the official pad is the smallest reflect margin covering the batch's transformed
# corners, clamped to (W-1, H-1); a traced G_inv cannot size a static pad, so the clamp's maximum
# is used always: the sampled pixels are the same, the cost is that of the largest official pad.
# ---------------------------------------------------------------------------------------------

# sym6 orthogonal wavelet low-pass taps (official `wavelets['sym6']`), the geometric up/down FIR.
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036,
        -0.007800708325034148)
_LUMA = np.asarray([1, 1, 1, 0], np.float32) / np.sqrt(3)  # v, the luma axis of colour space


@dataclasses.dataclass(frozen=True)
class AdaPipe:
    """Probability multipliers and ranges of the ADA pipeline (ADA App. B; official AugmentPipe
    defaults). Transform t is applied to a sample with probability t · p; 0 disables it."""

    xflip: float = 0.0  # x-flip
    rotate90: float = 0.0  # rotation by a multiple of 90 degrees
    xint: float = 0.0  # integer translation
    xint_max: float = 0.125  # its range, relative to the image size
    scale: float = 0.0  # isotropic scaling
    rotate: float = 0.0  # arbitrary rotation (P(pre or post rotation) = rotate · p)
    aniso: float = 0.0  # anisotropic scaling
    xfrac: float = 0.0  # fractional translation
    scale_std: float = 0.2  # log2 standard deviation of the isotropic scale
    rotate_max: float = 1.0  # rotation range, 1 = full circle
    aniso_std: float = 0.2  # log2 standard deviation of the anisotropic scale
    xfrac_std: float = 0.125  # standard deviation of xfrac, relative to the image size
    brightness: float = 0.0  # additive brightness
    contrast: float = 0.0  # contrast (scale about 0)
    lumaflip: float = 0.0  # Householder reflection of the luma axis
    hue: float = 0.0  # rotation about the luma axis
    saturation: float = 0.0  # scaling orthogonal to the luma axis
    brightness_std: float = 0.2  # standard deviation of brightness
    contrast_std: float = 0.5  # log2 standard deviation of contrast
    hue_max: float = 1.0  # hue rotation range, 1 = full circle
    saturation_std: float = 1.0  # log2 standard deviation of saturation

    @property
    def geometric(self) -> bool:
        return any(getattr(self, k) > 0 for k in _GEOM_KEYS)


_GEOM_KEYS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
_COLOR_KEYS = ("brightness", "contrast", "lumaflip", "hue", "saturation")
# The official train.py --augpipe presets ('bgc' = blit + geometric + colour, the paper default).
ADA_PIPES = {
    "blit": AdaPipe(xflip=1, rotate90=1, xint=1),
    "geom": AdaPipe(scale=1, rotate=1, aniso=1, xfrac=1),
    "color": AdaPipe(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1),
    "bgc": AdaPipe(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
                   brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1),
}


def _matrix(rows, n: int):
    """Nested rows of scalars / [N] arrays -> [N, k, k] float32."""
    def entry(v):
        return jnp.broadcast_to(jnp.asarray(v, jnp.float32), (n,))
    return jnp.stack([jnp.stack([entry(v) for v in row], -1) for row in rows], -2)


def translate2d(tx, ty, n: int):
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], n)


def scale2d(sx, sy, n: int):
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], n)


def rotate2d(theta, n: int):
    c, s = jnp.cos(theta), jnp.sin(theta)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], n)


class _Columns:
    """Per-sample random numbers as columns of one uniform [N, 16] and one normal [N, 8] draw
    (two RNG ops: far less to compile than one per parameter)."""

    def __init__(self, key, n: int):
        ku, kz = jax.random.split(key)
        self._u = iter(jax.random.uniform(ku, (16, n), jnp.float32))
        self._z = iter(jax.random.normal(kz, (8, n), jnp.float32))

    def uniform(self, width: int = 1):
        """U[0, 1), [N] (width 1) or [N, width]."""
        cols = [next(self._u) for _ in range(width)]
        return cols[0] if width == 1 else jnp.stack(cols, -1)

    def normal(self, width: int = 1):
        """N(0, 1), [N] (width 1) or [N, width]."""
        cols = [next(self._z) for _ in range(width)]
        return cols[0] if width == 1 else jnp.stack(cols, -1)

    def gated(self, prob, value, identity):
        """value where u < prob (one u per sample, broadcast over value's trailing axes)."""
        u = self.uniform().reshape((-1,) + (1,) * (value.ndim - 1))
        return jnp.where(u < prob, value, identity)


def draw_geometry(key, p, pipe: AdaPipe, n: int, h: int, w: int) -> dict:
    """Per-sample geometric parameters (ADA App. B), identity where not drawn. Translations in
    pixels [N, 2] (x, y); angles in radians; flips and quarter turns as counts."""
    r, out = _Columns(key, n), {}
    if pipe.xflip > 0:
        out["xflip"] = r.gated(pipe.xflip * p, jnp.floor(r.uniform() * 2), 0.0)
    if pipe.rotate90 > 0:
        out["rotate90"] = r.gated(pipe.rotate90 * p, jnp.floor(r.uniform() * 4), 0.0)
    if pipe.xint > 0:
        t = r.gated(pipe.xint * p, (r.uniform(2) * 2 - 1) * pipe.xint_max, 0.0)
        out["xint"] = jnp.round(t * jnp.asarray([w, h], jnp.float32))
    for name, std in (("scale", pipe.scale_std), ("aniso", pipe.aniso_std)):
        if getattr(pipe, name) > 0:
            out[name] = r.gated(getattr(pipe, name) * p, jnp.exp2(r.normal() * std), 1.0)
    if pipe.rotate > 0:
        p_rot = 1 - jnp.sqrt(jnp.clip(1 - pipe.rotate * p, 0, 1))  # P(pre or post) = rotate · p
        for name in ("rotate_pre", "rotate_post"):
            out[name] = r.gated(p_rot, (r.uniform() * 2 - 1) * np.pi * pipe.rotate_max, 0.0)
    if pipe.xfrac > 0:
        t = r.gated(pipe.xfrac * p, r.normal(2) * pipe.xfrac_std, 0.0)
        out["xfrac"] = t * jnp.asarray([w, h], jnp.float32)
    return out


def geometry_matrix(params: dict, n: int):
    """G_inv [N, 3, 3] = I · flip · rot90 · xint · scale · rot_pre · aniso · rot_post · xfrac,
    each the inverse of its transform (official order); a missing key is the identity."""
    inverses = {
        "xflip": lambda i: scale2d(1 - 2 * i, 1, n),  # its own inverse
        "rotate90": lambda i: rotate2d(np.pi / 2 * i, n),  # rotate2d_inv(-pi/2 i)
        "xint": lambda t: translate2d(-t[:, 0], -t[:, 1], n),
        "scale": lambda s: scale2d(1 / s, 1 / s, n),
        "rotate_pre": lambda th: rotate2d(th, n),  # rotate2d_inv(-theta)
        "aniso": lambda s: scale2d(1 / s, s, n),
        "rotate_post": lambda th: rotate2d(th, n),
        "xfrac": lambda t: translate2d(-t[:, 0], -t[:, 1], n),
    }
    g_inv = jnp.broadcast_to(jnp.eye(3, dtype=jnp.float32), (n, 3, 3))
    for name, inverse in inverses.items():
        if name in params:
            g_inv = g_inv @ inverse(jnp.asarray(params[name], jnp.float32))
    return g_inv


def _bilinear_zeros(img, ix, iy):
    """Bilinear samples of img [N, H, W, C] at pixel indices ix, iy [N, Ho, Wo] (torch
    grid_sample, zero padding) -> [N, Ho, Wo, C]."""
    _, h, w, _ = img.shape
    x0, y0 = jnp.floor(ix), jnp.floor(iy)
    fx, fy = ix - x0, iy - y0
    gather = jax.vmap(lambda im, yy, xx: im[yy, xx])
    out = 0.0
    for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                        (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
        v = gather(img, jnp.clip(yi, 0, h - 1).astype(jnp.int32),
                   jnp.clip(xi, 0, w - 1).astype(jnp.int32))
        out = out + v * jnp.where(inside, wgt, 0.0)[..., None]
    return out


def apply_geometry(x, g_inv):
    """Executes G_inv [N, 3, 3] on x [N, H, W, C] (official AugmentPipe): reflect pad, 2x sym6
    upsampling, bilinear sampling of a (2H + 12) x (2W + 12) grid, 2x sym6 downsampling + crop."""
    n, h, w, _ = x.shape
    f = ops.setup_filter(SYM6)  # [12], separable
    hz_pad = f.shape[0] // 4
    # Pad by the largest official margin (see the ADA banner): the centre does not move.
    x = jnp.pad(x, ((0, 0), (h - 1, h - 1), (w - 1, w - 1), (0, 0)), mode="reflect")
    x = ops.upsample2d(x, f, up=2)  # [N, 2 (3H - 2), 2 (3W - 2), C]
    # G_inv in the upsampled image's pixels: T(-1/2) S(2) G_inv S(1/2) T(1/2).
    g = (translate2d(-0.5, -0.5, n) @ scale2d(2, 2, n) @ g_inv @ scale2d(0.5, 0.5, n)
         @ translate2d(0.5, 0.5, n))
    ho, wo = 2 * (h + 2 * hz_pad), 2 * (w + 2 * hz_pad)
    ys, xs = jnp.meshgrid(jnp.arange(ho) + 0.5 - ho / 2, jnp.arange(wo) + 0.5 - wo / 2,
                          indexing="ij")  # output pixel centres, origin at the centre
    src_x = g[:, 0, 0, None, None] * xs + g[:, 0, 1, None, None] * ys + g[:, 0, 2, None, None]
    src_y = g[:, 1, 0, None, None] * xs + g[:, 1, 1, None, None] * ys + g[:, 1, 2, None, None]
    x = _bilinear_zeros(x, src_x + x.shape[2] / 2 - 0.5, src_y + x.shape[1] / 2 - 0.5)
    return ops.downsample2d(x, f, down=2, padding=-2 * hz_pad, flip_filter=True)


def draw_color(key, p, pipe: AdaPipe, n: int, channels: int) -> dict:
    """Per-sample colour parameters (ADA App. B), identity where not drawn; hue and saturation
    only for colour images (channels > 1), as the official code."""
    r, out = _Columns(key, n), {}
    if pipe.brightness > 0:
        out["brightness"] = r.gated(pipe.brightness * p, r.normal() * pipe.brightness_std, 0.0)
    if pipe.contrast > 0:
        out["contrast"] = r.gated(pipe.contrast * p, jnp.exp2(r.normal() * pipe.contrast_std),
                                  1.0)
    if pipe.lumaflip > 0:
        out["lumaflip"] = r.gated(pipe.lumaflip * p, jnp.floor(r.uniform() * 2), 0.0)
    if pipe.hue > 0 and channels > 1:
        out["hue"] = r.gated(pipe.hue * p, (r.uniform() * 2 - 1) * np.pi * pipe.hue_max, 0.0)
    if pipe.saturation > 0 and channels > 1:
        s = jnp.exp2(r.normal() * pipe.saturation_std)
        out["saturation"] = r.gated(pipe.saturation * p, s, 1.0)
    return out


def _luma_rotation(theta):
    """[N, 4, 4] rotation by theta about the luma axis v (Rodrigues), fixing the w row."""
    v, n = _LUMA[:3], theta.shape[0]
    c, s = jnp.cos(theta)[:, None, None], jnp.sin(theta)[:, None, None]
    cross = np.asarray([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]], np.float32)
    r3 = c * np.eye(3) + s * cross + (1 - c) * np.outer(v, v)  # [N, 3, 3]
    return jnp.zeros((n, 4, 4), jnp.float32).at[:, :3, :3].set(r3).at[:, 3, 3].set(1.0)


def color_matrix(params: dict, n: int):
    """C [N, 4, 4] = saturation · hue · lumaflip · contrast · brightness (applied in that order
    from the right, official order); a missing key is the identity."""
    eye, vv = np.eye(4, dtype=np.float32), np.outer(_LUMA, _LUMA)
    steps = {
        "brightness": lambda b: translate3d(b, n),
        "contrast": lambda c: _matrix([[c, 0, 0, 0], [0, c, 0, 0], [0, 0, c, 0], [0, 0, 0, 1]], n),
        "lumaflip": lambda i: eye - 2 * vv * i[:, None, None],  # Householder reflection
        "hue": _luma_rotation,
        "saturation": lambda s: vv + (eye - vv) * s[:, None, None],
    }
    c_mat = jnp.broadcast_to(jnp.eye(4, dtype=jnp.float32), (n, 4, 4))
    for name, step in steps.items():
        if name in params:
            c_mat = step(jnp.asarray(params[name], jnp.float32)) @ c_mat
    return c_mat


def translate3d(b, n: int):
    """[N, 4, 4] translation by (b, b, b) in colour space (brightness)."""
    return _matrix([[1, 0, 0, b], [0, 1, 0, b], [0, 0, 1, b], [0, 0, 0, 1]], n)


def apply_color(x, c_mat):
    """x [N, H, W, C] -> C[:3, :3] x + C[:3, 3] (RGB); grey (C = 1): x · sum of the row-mean of
    C[:3, :3] + mean of C[:3, 3] (official). Elementwise in float32, so C = I returns x."""
    c = x.shape[-1]
    if c == 3:
        lin = c_mat[:, None, None, :3, :3]  # [N, 1, 1, 3, 3]
        return jnp.sum(lin * x[..., None, :], axis=-1) + c_mat[:, None, None, :3, 3]
    if c == 1:
        m = jnp.mean(c_mat[:, :3, :], axis=1)  # [N, 4]
        return x * jnp.sum(m[:, :3], -1)[:, None, None, None] + m[:, None, None, 3:]
    raise ValueError(f"ada_augment: x must have 3 (RGB) or 1 (grey) channels, got shape "
                     f"{tuple(x.shape)}")


def ada_augment(key, x, p, pipe: AdaPipe | str = "bgc"):
    """ADA augmentation of x [N, H, W, C] with strength p (a float or a traced scalar).

    Geometric part skipped (exactly) when no sample drew a geometric transform, so p = 0
    returns x unchanged; the colour matrix is then the identity, applied exactly."""
    checks.check_rank("ada_augment: x", x, 4, "[N, H, W, C]")
    if isinstance(pipe, str):
        if pipe not in ADA_PIPES:
            raise ValueError(f"ada_augment: unknown pipe {pipe!r}; known: {sorted(ADA_PIPES)}")
        pipe = ADA_PIPES[pipe]
    n, h, w, c = x.shape
    dtype, x = x.dtype, x.astype(jnp.float32)
    k_geom, k_color = jax.random.split(key)
    if pipe.geometric:
        g_inv = geometry_matrix(draw_geometry(k_geom, p, pipe, n, h, w), n)
        identity = jnp.all(g_inv == jnp.eye(3, dtype=jnp.float32))
        x = jax.lax.cond(identity, lambda v: v, lambda v: apply_geometry(v, g_inv), x)
    x = apply_color(x, color_matrix(draw_color(k_color, p, pipe, n, c), n))
    return x.astype(dtype)


def ada_adjust(p, signs_sum, count, target: float, batch: int, interval: int, ada_kimg: float):
    """ADA §3: r_t = E[sign(D(x_real))] over the last `interval` steps; p <- max(p + sign(r_t -
    target) · batch · interval / (ada_kimg · 1000), 0) (official training_loop). No samples (count
    0): p unchanged. Returns (p, r_t)."""
    r_t = signs_sum / jnp.maximum(count, 1.0)
    adjust = jnp.sign(r_t - target) * (batch * interval) / (ada_kimg * 1000.0)
    return jnp.where(count > 0, jnp.maximum(p + adjust, 0.0), p), r_t
