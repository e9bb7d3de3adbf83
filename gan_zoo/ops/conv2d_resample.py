"""2-D convolution with optional FIR up/down-sampling (StyleGAN2 `conv2d_resample`, NHWC).

The result equals the official generic path: `upfirdn2d(x, f, up, padding, gain=up**2)`, then a
'valid' convolution with w, then `upfirdn2d(., f, down=down)`. The code reorders these linear steps
(convolutions commute) so that no convolution runs on zero-inserted or to-be-discarded samples:
up -> polyphase transposed conv (`conv2d_up`: up^2 stride-1 convs with sub-kernels; on one CPU
thread its forward+backward is ~30x faster than XLA's lhs-dilated conv, whose input gradient is
the slow part) then the FIR; down -> FIR then a stride-`down` conv (measured as fast as a
polyphase or space-to-depth form). Measurements: benchmarks/fir_ops.py, benchmarks/RESULTS.md.
"""

import contextlib
import contextvars
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from gan_zoo import checks
from gan_zoo.ops.upfirdn2d import axis_plan, filter_size, interleave_phases, pad_axis, upfirdn2d

_DN = ("NHWC", "HWIO", "NHWC")


def conv2d(x, w, stride=1, padding=((0, 0), (0, 0)), groups=1, flip_weight=True, lhs_dilation=1):
    """Plain conv. w: [kh, kw, I/groups, O]. flip_weight=True is correlation (torch F.conv2d);
    False flips the kernel spatially (a true convolution). padding: ((y0, y1), (x0, x1)) >= 0."""
    if not flip_weight:
        w = jnp.flip(w, axis=(0, 1))
    w = w.astype(x.dtype)
    if groups == 1 and lhs_dilation == 1 and not isinstance(padding, str):
        padding = tuple(tuple(int(v) for v in p) for p in padding)
        if min(min(p) for p in padding) >= 0:
            return _conv(x, w, int(stride), padding)
    return jax.lax.conv_general_dilated(
        x, w, window_strides=(stride, stride), padding=padding,
        lhs_dilation=(lhs_dilation, lhs_dilation), dimension_numbers=_DN,
        feature_group_count=groups)


# The weight gradient's formulation, read when the backward pass is traced. XLA:CPU's default
# YNNPACK convolutions run XLA's own weight-gradient conv ~3x slower than one matmul per tap, but
# its Eigen convolutions (a per-jit compiler option, `EIGEN_CONV_OPTIONS`) run that conv at
# oneDNN's speed, where the per-tap matmuls and their window copies stay 1.3-1.6x slower at wide
# layers (benchmarks/RESULTS.md "The conv weight gradient on XLA:CPU"). So a jit compiled with
# those options traces its backward under `native_weight_grad()`; everything else keeps the taps.
_NATIVE_WGRAD = contextvars.ContextVar("gan_zoo_native_weight_grad", default=False)
EIGEN_CONV_OPTIONS = (("xla_cpu_experimental_ynn_fusion_type", ""),)


@functools.lru_cache(maxsize=None)
def _options_supported(options: tuple, device) -> bool:
    """Whether this jaxlib compiles with `options` (experimental XLA flags come and go)."""
    try:
        x = jax.device_put(np.float32(0), device)
        jax.jit(lambda v: v + 1, compiler_options=dict(options)).lower(x).compile()
    except jax.errors.JaxRuntimeError:
        return False
    return True


def cpu_compiler_options(devices, options: tuple = EIGEN_CONV_OPTIONS):
    """dict(options) when every device (a Mesh or an iterable of devices) is a CPU and jaxlib
    knows them, else None."""
    devices = list(devices.devices.flat) if isinstance(devices, Mesh) else list(devices)
    if not options or any(d.platform != "cpu" for d in devices):
        return None
    return dict(options) if _options_supported(options, devices[0]) else None


@contextlib.contextmanager
def native_weight_grad(on: bool = True):
    """Within: conv2d's backward traces XLA's own weight-gradient conv instead of the per-tap
    matmuls (for jits compiled with EIGEN_CONV_OPTIONS on CPU, or on GPU/TPU)."""
    token = _NATIVE_WGRAD.set(on)
    try:
        yield
    finally:
        _NATIVE_WGRAD.reset(token)


# Issue #20: XLA's own derivative of a strided conv's input gradient with respect to the kernel
# (needed by R1, a gradient of a gradient) is a conv in a non-canonical layout (rhs_reversal,
# lhs_dilate) that XLA:CPU runs very slowly: R1 of a 3x3/2 conv layer took 20x the time of this
# VJP (benchmarks/RESULTS.md). This VJP uses only canonical NHWC convs and per-tap matmuls and is
# itself differentiable, so second order goes through the same rule again. (custom_vjp: reverse
# mode only; nothing here uses jvp.)
@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv(x, w, stride, padding):
    """Correlation, groups=1. x: [N, H, W, I], w: [kh, kw, I, O], padding ((y0, y1), (x0, x1))."""
    return jax.lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=_DN)


def _conv_fwd(x, w, stride, padding):
    return _conv(x, w, stride, padding), (x, w)


def _conv_bwd(stride, padding, res, g):
    x, w = res
    (y0, y1), (x0, x1) = padding
    kh, kw = int(w.shape[0]), int(w.shape[1])
    n_h, n_w = int(g.shape[1]), int(g.shape[2])
    # Input gradient: the transposed conv, i.e. the flipped, I/O-swapped kernel correlated with
    # g zero-upsampled by the stride (polyphase), cropped to the unpadded input.
    w_t = jnp.flip(w, axis=(0, 1)).transpose(0, 1, 3, 2)  # [kh, kw, O, I]
    crop = (kw - 1 - x0, x.shape[2] + x0 - n_w * stride,
            kh - 1 - y0, x.shape[1] + y0 - n_h * stride)
    dx = conv2d_up(g, w_t, stride, crop)
    if _NATIVE_WGRAD.get():  # XLA's weight-gradient conv (see _NATIVE_WGRAD)
        _, vjp_w = jax.vjp(lambda v: jax.lax.conv_general_dilated(
            x, v, (stride, stride), padding, dimension_numbers=_DN), w)
        return dx.astype(x.dtype), vjp_w(g)[0].astype(w.dtype)
    # Weight gradient: one matmul per tap of the strided window of padded x with g. Written as
    # g^T x ([O, I], transposed once at the end): XLA:CPU then transposes g once for all taps,
    # where x^T g copied a transposed window of x per tap (2x the time at [8,64,64,128] 3x3).
    xp = jnp.pad(x, ((0, 0), (y0, y1), (x0, x1), (0, 0)))
    taps = [[jnp.einsum("nhwo,nhwi->oi", g, xp[:, ky:ky + stride * (n_h - 1) + 1:stride,
                                               kx:kx + stride * (n_w - 1) + 1:stride])
             for kx in range(kw)] for ky in range(kh)]
    dw = jnp.stack([jnp.stack(row) for row in taps]).transpose(0, 1, 3, 2)  # [kh, kw, I, O]
    return dx.astype(x.dtype), dw.astype(w.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


def resample_padding(padding, fw: int, fh: int, up: int, down: int) -> tuple:
    """The user padding (x0, x1, y0, y1) plus the implicit padding of the up- and down-FIR."""
    x0, x1, y0, y1 = padding
    if up > 1:
        x0, x1 = x0 + (fw + up - 1) // 2, x1 + (fw - up) // 2
        y0, y1 = y0 + (fh + up - 1) // 2, y1 + (fh - up) // 2
    if down > 1:
        x0, x1 = x0 + (fw - down + 1) // 2, x1 + (fw - down) // 2
        y0, y1 = y0 + (fh - down + 1) // 2, y1 + (fh - down) // 2
    return x0, x1, y0, y1


def conv2d_up(x, w, up: int, padding, groups=1):
    """'valid' correlation of w with x zero-upsampled by `up` and padded (negative = crop) by
    padding (x0, x1, y0, y1): a transposed conv, run polyphase as up^2 stride-1 convs of x with
    the sub-kernels w[jy::up, jx::up] (no multiply by an inserted zero), interleaved.
    x: [N, H, W, I], w: [kh, kw, I/groups, O] -> [N, H*up + y0 + y1 - kh + 1, ..., O]."""
    kh, kw = int(w.shape[0]), int(w.shape[1])
    plan_h = axis_plan(x.shape[1], up, 1, padding[2], padding[3], kh)
    plan_w = axis_plan(x.shape[2], up, 1, padding[0], padding[1], kw)
    x = pad_axis(pad_axis(x, 1, plan_h.pad), 2, plan_w.pad)
    rows = []
    for phase_y in plan_h.phases:
        cols = []
        for phase_x in plan_w.phases:
            if not phase_y or not phase_x:  # a kernel smaller than `up`: this phase is all zero
                cols.append(jnp.zeros((x.shape[0], plan_h.count, plan_w.count, w.shape[3]),
                                      x.dtype))
                continue
            (jy, sy), (jx, sx) = phase_y[0], phase_x[0]  # taps j0, j0+up, ... read x[s0], x[s0+1]
            xs = x[:, sy:sy + plan_h.count + len(phase_y) - 1,
                   sx:sx + plan_w.count + len(phase_x) - 1]
            cols.append(conv2d(xs, w[jy::up, jx::up], groups=groups))
        rows.append(interleave_phases(cols, 2, plan_w.out_len))
    return interleave_phases(rows, 1, plan_h.out_len)


def _check_args(x, w, f, up, down, groups):
    checks.check_rank("conv2d_resample: x", x, 4, "[N, H, W, C]")
    checks.check_rank("conv2d_resample: w", w, 4, "[kh, kw, I/groups, O]")
    for name, v in (("up", up), ("down", down), ("groups", groups)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"conv2d_resample: {name} must be a positive int, got {v!r}")
    if x.shape[-1] != w.shape[2] * groups:
        raise ValueError(f"conv2d_resample: x has {x.shape[-1]} channels but w {tuple(w.shape)} "
                         f"with groups={groups} expects {w.shape[2] * groups}")
    if w.shape[3] % groups:
        raise ValueError(f"conv2d_resample: out channels {w.shape[3]} not divisible by "
                         f"groups={groups}")
    if (up > 1 or down > 1) and f is None:
        raise ValueError("conv2d_resample: up/down > 1 needs a resampling filter f")


def conv2d_resample(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True,
                    flip_filter=False, impl="auto"):
    """Conv with resampling. StyleGAN2 `conv2d_resample` semantics.

    Steps (as the official generic path): 1. zero-insert by `up`, pad by `padding` plus the filter's
    implicit padding, FIR with f (gain up^2); 2. 'valid' conv with w (correlation if flip_weight);
    3. FIR with f and keep every `down`-th sample.
    Args:
      x: [N, H, W, C]. w: [kh, kw, C/groups, O]. f: [k] or [fh, fw] filter (None when up=down=1).
      up, down: ints. padding: int, [px, py] or [x0, x1, y0, y1].
      impl: implementation of the FIR steps (see gan_zoo.ops.dispatch).
    Returns: [N, H', W', O].
    """
    _check_args(x, w, f, up, down, groups)
    kh, kw = int(w.shape[0]), int(w.shape[1])
    fw, fh = filter_size(None if f is None else jnp.asarray(f))
    p = resample_padding(checks.padding4("conv2d_resample: padding", padding), fw, fh, up, down)
    x0, x1, y0, y1 = p
    conv = lambda x, **kw: conv2d(x, w, groups=groups, flip_weight=flip_weight, **kw)
    fir = functools.partial(upfirdn2d, flip_filter=flip_filter, impl=impl)

    # 1x1 kernels commute with resampling: run them at the low resolution.
    if kh == 1 and kw == 1 and down > 1 and up == 1:
        return conv(fir(x, f, down=down, padding=p))
    if kh == 1 and kw == 1 and up > 1 and down == 1:
        return fir(conv(x), f, up=up, padding=p, gain=up**2)
    # Downsampling only: FIR at full rate, then a strided conv.
    if down > 1 and up == 1:
        return conv(fir(x, f, padding=p), stride=down)
    # Upsampling: transposed conv (polyphase, with the padding/crop), then the up-FIR with no
    # padding, then the optional down-FIR. (A crop commutes with the 'valid' convolutions.)
    if up > 1:
        x = conv2d_up(x, w if flip_weight else jnp.flip(w, axis=(0, 1)), up, p, groups=groups)
        x = fir(x, f, gain=up**2)
        return fir(x, f, down=down) if down > 1 else x
    # No resampling: pad/crop, then conv.
    if min(p) < 0:
        x = fir(x, None, padding=[min(v, 0) for v in p])
    return conv(x, padding=((max(y0, 0), max(y1, 0)), (max(x0, 0), max(x1, 0))))
