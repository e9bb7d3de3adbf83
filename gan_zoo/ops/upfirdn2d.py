"""FIR up/down-sampling: upfirdn2d and its wrappers (StyleGAN2 App. B, StyleGAN3 §3.1).

Reference semantics are those of the official `torch_utils.ops.upfirdn2d` (the ``impl='ref'`` path),
translated to NHWC. Filters are `[fh, fw]` (2-D) or `[k]` (1-D, separable: applied along W then H).
Scaling factors and paddings given as lists follow the official order: `[x, y]` and
`[x0, x1, y0, y1]`.

Execution (impl='xla'): polyphase sums of shifted slices, chosen by measurement on one CPU thread
(benchmarks/fir_ops.py, benchmarks/RESULTS.md "FIR ops on CPU"; 10-100x faster than a depthwise
conv over the zero-inserted input). No zero is ever multiplied and no dropped sample is computed:
output o reads input samples (o*down + j - p0) / up for the taps j where that is an integer. A
concrete rank-1 2-D filter (the [1,3,3,1] outer product of StyleGAN2) runs as two 1-D passes.
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo import checks
from gan_zoo.ops import dispatch


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

class AxisPlan(NamedTuple):
    """Polyphase schedule of upfirdn along one axis (all Python ints, fixed at trace time)."""

    pad: tuple  # (lo, hi) zeros added to the input so every slice below is in range
    phases: tuple  # per output phase r: ((tap j, start in the padded input), ...)
    stride: int  # input step between consecutive outputs of one phase
    count: int  # outputs computed per phase (the interleaved result is cropped to out_len)
    out_len: int  # (length*up + p0 + p1 - k) // down + 1


def axis_plan(length: int, up: int, down: int, p0: int, p1: int, k: int) -> AxisPlan:
    """Output o = P*q + r (P = up/gcd(up, down) phases) is sum_j c[j] * x[q*s + t_rj], with
    s = down/gcd and t_rj = (r*down + j - p0) / up over the taps j that make it an integer;
    c is the correlation kernel (the flipped filter)."""
    out_len = (length * up + p0 + p1 - k) // down + 1
    g = math.gcd(up, down)
    period, stride = up // g, down // g
    count = -(-out_len // period)
    taps = [[(j, (r * down + j - p0) // up) for j in range(k) if (r * down + j - p0) % up == 0]
            for r in range(period)]
    starts = [t for phase in taps for _, t in phase]
    lo = max(0, -min(starts))
    hi = max(0, max(starts) + stride * (count - 1) + 1 - length)
    phases = tuple(tuple((j, t + lo) for j, t in phase) for phase in taps)
    return AxisPlan((lo, hi), phases, stride, count, out_len)


def pad_axis(x, axis: int, pad: tuple):
    if pad == (0, 0):
        return x
    cfg = [(0, 0, 0)] * x.ndim
    cfg[axis] = (pad[0], pad[1], 0)
    return jax.lax.pad(x, jnp.zeros((), x.dtype), cfg)


def _slice_axis(x, axis: int, start: int, plan: AxisPlan):
    return jax.lax.slice_in_dim(x, start, start + plan.stride * (plan.count - 1) + 1, plan.stride,
                                axis)


def _tap_sum(terms):
    """sum(w * x) over (w, x) pairs; w a Python float (0 skipped, 1 not multiplied) or a traced
    scalar."""
    acc = None
    for w, x in terms:
        if isinstance(w, float) and w == 0.0:
            continue
        t = x if isinstance(w, float) and w == 1.0 else x * w
        acc = t if acc is None else acc + t
    return acc


def interleave_phases(phases, axis: int, out_len: int):
    """[phase r][..., q, ...] -> [..., P*q + r, ...] cropped to out_len (stack + reshape)."""
    y = phases[0]
    if len(phases) > 1:
        y = jnp.stack(phases, axis=axis + 1)
        y = y.reshape(y.shape[:axis] + (-1,) + y.shape[axis + 2:])
    return jax.lax.slice_in_dim(y, 0, out_len, axis=axis)


def _zeros_phase(x, axis: int, plan: AxisPlan):
    shape = list(x.shape)
    shape[axis] = plan.count
    return jnp.zeros(shape, x.dtype)


def _fir_1d(x, axis: int, plan: AxisPlan, c):
    """One separable pass along `axis` with correlation taps c ([k]: floats or traced)."""
    x = pad_axis(x, axis, plan.pad)
    phases = []
    for phase in plan.phases:
        y = _tap_sum((c[j], _slice_axis(x, axis, s, plan)) for j, s in phase)
        phases.append(_zeros_phase(x, axis, plan) if y is None else y)
    return interleave_phases(phases, axis, plan.out_len)


def _fir_2d(x, plan_h: AxisPlan, plan_w: AxisPlan, c):
    """Non-separable FIR: every (phase_y, phase_x) sums its taps c[jy][jx] over 2-D slices."""
    x = pad_axis(pad_axis(x, 1, plan_h.pad), 2, plan_w.pad)
    rows = []
    for phase_y in plan_h.phases:
        cols = []
        for phase_x in plan_w.phases:
            y = _tap_sum((c[jy][jx], _slice_axis(_slice_axis(x, 1, sy, plan_h), 2, sx, plan_w))
                         for jy, sy in phase_y for jx, sx in phase_x)
            cols.append(_zeros_phase(_zeros_phase(x, 1, plan_h), 2, plan_w) if y is None else y)
        rows.append(interleave_phases(cols, 2, plan_w.out_len))
    return interleave_phases(rows, 1, plan_h.out_len)


def _concrete(f):
    """f as a float64 numpy array when its values are known at trace time, else None."""
    try:
        return np.asarray(f, np.float64)
    except jax.errors.TracerArrayConversionError:
        return None


def _rank1_factors(f):
    """(col [fh], row [fw]) with outer(col, row) == f (float rounding), or None."""
    i, j = np.unravel_index(np.argmax(np.abs(f)), f.shape)
    col, row = f[:, j] / f[i, j], f[i, :]
    if np.allclose(np.outer(col, row), f, rtol=1e-6, atol=1e-7 * np.abs(f).max()):
        return col, row
    return None


def _correlation_taps(f, gain, flip_filter):
    """Filter -> ('sep', c_h, c_w) or ('2d', c): correlation-order taps with the gain folded in;
    Python floats for a concrete filter (constants in the graph), traced scalars otherwise."""
    fc = _concrete(f)
    if fc is not None:
        fc = fc * (gain ** (fc.ndim / 2))
        fc = fc if flip_filter else np.flip(fc, axis=tuple(range(fc.ndim)))
        if fc.ndim == 2 and (fac := _rank1_factors(fc)) is not None:
            fc = fac
        elif fc.ndim == 2:
            return "2d", [[float(v) for v in row] for row in fc]
        else:
            fc = (fc, fc)
        return "sep", [float(v) for v in fc[0]], [float(v) for v in fc[1]]
    f = jnp.asarray(f, jnp.float32) * (gain ** (f.ndim / 2))
    f = f if flip_filter else jnp.flip(f, axis=tuple(range(f.ndim)))
    if f.ndim == 2:
        return "2d", [[f[i, j] for j in range(f.shape[1])] for i in range(f.shape[0])]
    taps = [f[j] for j in range(f.shape[0])]
    return "sep", taps, taps


def upfirdn2d(x, f=None, up=1, down=1, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Upsample, pad, FIR-filter, downsample. StyleGAN2/3 `upfirdn2d`.

    Steps: 1. insert `up-1` zeros after every sample (along x and y); 2. pad (negative = crop) by
    `[x0, x1, y0, y1]`; 3. convolve with `f * gain**(f.ndim/2)` in 'valid' mode (a TRUE convolution
    unless `flip_filter`; 1-D filters along W, then H); 4. keep every `down`-th sample from index 0.
    (Executed polyphase, see the module docstring: steps 1 and 4 never materialise.)

    Args:
      x: [N, H, W, C].
      f: None (identity), [k] (separable) or [fh, fw]; numpy (taps become constants) or jnp.
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
    f = np.ones([1, 1], np.float32) if f is None else f
    f = f if hasattr(f, "ndim") else np.asarray(f, np.float32)  # a list of taps
    fw, fh = filter_size(f)
    if x.shape[2] * upx + x0 + x1 - fw + 1 < 1 or x.shape[1] * upy + y0 + y1 - fh + 1 < 1:
        raise ValueError(f"upfirdn2d: padding {padding} and a {fh}x{fw} filter leave no output "
                         f"for input {tuple(x.shape)} and up={up}")
    geom = ((upx, upy), (downx, downy), (x0, x1, y0, y1))
    fc = _concrete(f)
    if fc is None or not isinstance(gain, (int, float, np.number)):  # traced: autodiff of slices
        return _fir(x, f, geom, flip_filter, gain)
    key = (fc.shape, tuple(fc.ravel().tolist()))
    return _fir_transpose_vjp(key, geom, tuple(x.shape[1:3]), bool(flip_filter), float(gain))(x)


def _fir(x, f, geom, flip_filter, gain):
    """upfirdn2d's math for validated arguments (polyphase slice sums, accumulated in >= f32)."""
    (upx, upy), (downx, downy), (x0, x1, y0, y1) = geom
    fw, fh = filter_size(f)
    plan_h = axis_plan(x.shape[1], upy, downy, y0, y1, fh)
    plan_w = axis_plan(x.shape[2], upx, downx, x0, x1, fw)
    dtype = x.dtype
    x = jnp.asarray(x).astype(jnp.promote_types(dtype, jnp.float32))
    kind, *taps = _correlation_taps(f, gain, flip_filter)
    if kind == "2d":
        return _fir_2d(x, plan_h, plan_w, taps[0]).astype(dtype)
    x = _fir_1d(x, 2, plan_w, taps[1])  # along W, then H (the official order)
    return _fir_1d(x, 1, plan_h, taps[0]).astype(dtype)


@functools.lru_cache(maxsize=512)
def _fir_transpose_vjp(f_key, geom, in_hw, flip_filter, gain):
    """x -> upfirdn2d(x) for a constant filter, whose backward is again an upfirdn2d: the
    transpose of an up-FIR is a down-FIR with the flipped filter (official `_upfirdn2d_cuda`
    rule). Measured faster on CPU than autodiff of the slice sums (benchmarks/fir_ops.py); the
    backward is itself differentiable, so R1's second-order gradient works."""
    f = np.asarray(f_key[1], np.float64).reshape(f_key[0])
    (upx, upy), (downx, downy), (x0, _, y0, _) = geom
    fw, fh = filter_size(f)
    (h, w) = in_hw

    @jax.custom_vjp
    def op(x):
        return _fir(x, f, geom, flip_filter, gain)

    def bwd(_, dy):
        out_h, out_w = dy.shape[1:3]
        p = [fw - x0 - 1, w * upx - out_w * downx + x0 - upx + 1,
             fh - y0 - 1, h * upy - out_h * downy + y0 - upy + 1]
        dx = upfirdn2d(dy, f, up=[downx, downy], down=[upx, upy], padding=p,
                       flip_filter=not flip_filter, gain=gain, impl="xla")
        assert dx.shape[1:3] == (h, w), (dx.shape, in_hw)
        return (dx,)

    op.defvjp(lambda x: (op(x), None), bwd)
    return op


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
