"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The one source of truth for StyleGAN-XL's projected D (spec stylegan_xl_and_t.md §1.4, input path
step 1) and StyleGAN-T's D (§2.4: "default parameters"). Semantics of the official
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

All functions are pure: (key, x [N, H, W, C]) -> same shape and dtype; the same key gives the same
output. Draws are float32 and cast to x.dtype.
"""

from typing import Sequence

import jax
import jax.numpy as jnp

from gan_zoo import checks

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


def translate(x, shift_h, shift_w, max_h: int, max_w: int):
    """out[n, i, j] = x[n, i + shift_h[n], j + shift_w[n]], zero outside; |shift| <= max_*."""
    _, h, w, _ = x.shape
    pad = jnp.pad(x, ((0, 0), (max_h, max_h), (max_w, max_w), (0, 0)))  # zero fill

    def one(img, th, tw):  # img [H + 2 max_h, W + 2 max_w, C]
        return jax.lax.dynamic_slice(img, (th + max_h, tw + max_w, 0), (h, w, img.shape[-1]))
    return jax.vmap(one)(pad, shift_h, shift_w)


def rand_translation(key, x, ratio: float = TRANSLATION_RATIO):
    """Integer translation by up to int(size * ratio + 0.5) px per axis, zero padding."""
    n, h, w, _ = x.shape
    sh, sw = max_shift(h, ratio), max_shift(w, ratio)
    kh, kw = jax.random.split(key)
    th = jax.random.randint(kh, (n,), -sh, sh + 1)
    tw = jax.random.randint(kw, (n,), -sw, sw + 1)
    return translate(x, th, tw, sh, sw)


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


def rand_cutout(key, x, ratio: float = CUTOUT_RATIO):
    """Zero one square of side int(size * ratio + 0.5), uniform centre (DiffAugment cutout)."""
    n, h, w, _ = x.shape
    ch, cw = cutout_size(h, ratio), cutout_size(w, ratio)
    kh, kw = jax.random.split(key)
    # torch.randint(0, size + (1 - c % 2)): the upper bound is exclusive.
    oh = jax.random.randint(kh, (n,), 0, h + (1 - ch % 2))
    ow = jax.random.randint(kw, (n,), 0, w + (1 - cw % 2))
    return (x * cutout_mask(oh, ow, h, w, ch, cw).astype(x.dtype)).astype(x.dtype)


def _check_policy(policy: Sequence[str]) -> tuple[str, ...]:
    if isinstance(policy, str):
        policy = tuple(p for p in policy.split(",") if p)
    unknown = [p for p in policy if p not in AUGMENT_FNS]
    if unknown:
        raise ValueError(f"diff_augment: unknown policy entries {unknown}; known: "
                         f"{sorted(AUGMENT_FNS)}")
    return tuple(policy)


def diff_augment(key, x, policy: Sequence[str] | str = DEFAULT_POLICY,
                 translation_ratio: float = TRANSLATION_RATIO, cutout_ratio: float = CUTOUT_RATIO):
    """DiffAugment of images x [N, H, W, C] (any range; the GANs pass [-1, 1]), per-sample draws.

    policy: names from AUGMENT_FNS in application order (or the official comma string
    "color,translation,cutout"). Each op draws from fold_in(key, its index in the op list).
    """
    checks.check_rank("diff_augment: x", x, 4, "[N, H, W, C]")
    ratios = {rand_translation: translation_ratio, rand_cutout: cutout_ratio}
    fns = [f for p in _check_policy(policy) for f in AUGMENT_FNS[p]]
    for i, fn in enumerate(fns):
        k = jax.random.fold_in(key, i)
        x = fn(k, x, ratios[fn]) if fn in ratios else fn(k, x)
    return x


AUGMENT_FNS = {
    "color": (rand_brightness, rand_saturation, rand_contrast),
    "translation": (rand_translation,),
    "cutout": (rand_cutout,),
}
