"""FIR up/down-sampling: upfirdn2d and its wrappers (StyleGAN2 App. B, StyleGAN3 §3.1).

Reference semantics are those of the official `torch_utils.ops.upfirdn2d` (the ``impl='ref'`` path),
translated to NHWC. Filters are `[fh, fw]` (2-D) or `[k]` (1-D, separable: applied along W then H).
Scaling factors and paddings given as lists follow the official order: `[x, y]` and
`[x0, x1, y0, y1]`.
"""

import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo import checks
from gan_zoo.ops import dispatch

_DN = ("NHWC", "HWIO", "NHWC")


def setup_filter(f=None, normalize=True, flip_filter=False, gain=1, separable=None):
    """Official `setup_filter`: list/array -> float32 filter.

    Steps: 1. None means the 1x1 identity. 2. A 1-D filter with fewer than 8 taps becomes the 2-D
    outer product unless `separable=True`. 3. Normalise to sum 1. 4. Optional flip.
    5. Multiply by `gain ** (ndim / 2)`.
    Returns: np.float32 `[k]` or `[fh, fw]`.
    """
    f = np.asarray(1.0 if f is None else f, dtype=np.float32)
    if f.ndim not in (0, 1, 2) or f.size == 0:
        raise ValueError(f"setup_filter: f must be a non-empty scalar, 1-D or 2-D, got {f.shape}")
    if f.ndim == 0:
        f = f[np.newaxis]
    if separable is None:
        separable = f.ndim == 1 and f.size >= 8
    if f.ndim == 1 and not separable:
        f = np.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError(f"setup_filter: separable={separable} does not fit a {f.ndim}-D filter")
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = np.flip(f, axis=tuple(range(f.ndim)))
    return (f * (gain ** (f.ndim / 2))).astype(np.float32)


def filter_size(f) -> tuple[int, int]:
    """(fw, fh) of a filter; None is the 1x1 identity."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"filter f: expected [k] or [fh, fw], got shape {tuple(f.shape)}")
    return int(f.shape[-1]), int(f.shape[0])


def _depthwise(x, f2d, stride_hw):
    """Correlation of every channel of x [N,H,W,C] with f2d [fh, fw], 'valid', given strides."""
    c = x.shape[-1]
    k = jnp.broadcast_to(f2d[:, :, None, None], f2d.shape + (1, c)).astype(x.dtype)  # [fh,fw,1,C]
    return jax.lax.conv_general_dilated(
        x, k, window_strides=stride_hw, padding="VALID", dimension_numbers=_DN,
        feature_group_count=c)


def upfirdn2d(x, f=None, up=1, down=1, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Upsample, pad, FIR-filter, downsample. StyleGAN2/3 `upfirdn2d`.

    Steps: 1. insert `up-1` zeros after every sample (along x and y); 2. pad (negative = crop) by
    `[x0, x1, y0, y1]`; 3. convolve with `f * gain**(f.ndim/2)` in 'valid' mode (a TRUE convolution
    unless `flip_filter`; 1-D filters along W, then H); 4. keep every `down`-th sample from index 0.

    Args:
      x: [N, H, W, C].
      f: None (identity), [k] (separable) or [fh, fw]; float32.
      up, down: int or [x, y]. padding: int, [px, py] or [x0, x1, y0, y1].
    Returns:
      [N, H', W', C] with W' = (W*upx + x0 + x1 - fw + downx) // downx, likewise H'.
    """
    if dispatch.resolve_impl(impl, "upfirdn2d") == "pallas":
        return dispatch.kernel("upfirdn2d")(x, f, up, down, padding, flip_filter, gain)
    checks.check_rank("upfirdn2d: x", x, 4, "[N, H, W, C]")
    upx, upy = checks.int_pair("upfirdn2d: up", up)
    downx, downy = checks.int_pair("upfirdn2d: down", down)
    x0, x1, y0, y1 = checks.padding4("upfirdn2d: padding", padding)
    f = jnp.ones([1, 1], jnp.float32) if f is None else jnp.asarray(f, jnp.float32)
    fw, fh = filter_size(f)
    out_w = x.shape[2] * upx + x0 + x1 - fw + 1
    out_h = x.shape[1] * upy + y0 + y1 - fh + 1
    if out_w < 1 or out_h < 1:
        raise ValueError(f"upfirdn2d: padding {padding} and a {fh}x{fw} filter leave no output "
                         f"for input {tuple(x.shape)} and up={up}")

    # Upsample (zero insertion) and pad/crop in one lax.pad; [N, H*up+y0+y1, W*up+x0+x1, C].
    zero = jnp.zeros((), x.dtype)
    x = jax.lax.pad(x, zero, [(0, 0, 0), (y0, y1 + upy - 1, upy - 1),
                              (x0, x1 + upx - 1, upx - 1), (0, 0, 0)])

    # Filter; conv_general_dilated correlates, so flip for a true convolution. Downsample by stride.
    f = f * (gain ** (f.ndim / 2))
    if not flip_filter:
        f = jnp.flip(f, axis=tuple(range(f.ndim)))
    if f.ndim == 2:
        return _depthwise(x, f, (downy, downx))
    x = _depthwise(x, f[None, :], (1, downx))
    return _depthwise(x, f[:, None], (downy, 1))


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Upsample by `up` with FIR filter f; output exactly `up` times the input (plus padding)."""
    upx, upy = checks.int_pair("upsample2d: up", up)
    x0, x1, y0, y1 = checks.padding4("upsample2d: padding", padding)
    fw, fh = filter_size(None if f is None else jnp.asarray(f))
    p = [x0 + (fw + upx - 1) // 2, x1 + (fw - upx) // 2,
         y0 + (fh + upy - 1) // 2, y1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy,
                     impl=impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Downsample by `down` with FIR filter f; output exactly 1/`down` of the input (+ padding)."""
    downx, downy = checks.int_pair("downsample2d: down", down)
    x0, x1, y0, y1 = checks.padding4("downsample2d: padding", padding)
    fw, fh = filter_size(None if f is None else jnp.asarray(f))
    p = [x0 + (fw - downx + 1) // 2, x1 + (fw - downx) // 2,
         y0 + (fh - downy + 1) // 2, y1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Filter with f keeping the input size (the implicit padding splits odd totals fw//2 first)."""
    x0, x1, y0, y1 = checks.padding4("filter2d: padding", padding)
    fw, fh = filter_size(None if f is None else jnp.asarray(f))
    p = [x0 + fw // 2, x1 + (fw - 1) // 2, y0 + fh // 2, y1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)
