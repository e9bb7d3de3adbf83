"""Pallas modulated conv (StyleGAN2 §2.2, eqs. 1-3): modulate, conv, demodulate in one kernel.

Same semantics and signature as `gan_zoo.ops.modulated_conv2d` (NHWC, weight HWIO). The kernel
computes conv(x * s, w) * sigma^-1 per sample (the "non-fused" form, mathematically equal to the
grouped conv with per-sample weights), with sigma^-1 = rsqrt(s^2 @ sum_k w^2 + eps) made in the
kernel, so per-sample weights are never written anywhere. The conv is polyphase
(`kernels_pallas._common`): one matmul [tile pixels, I] @ [I, O_b] per live tap, so up=2 (a
transposed conv) costs the same as up=1 and zero-inserted samples are never read. Resampling
follows `gan_zoo.ops.conv2d_resample`: up -> transposed conv in this kernel, then the FIR
(Pallas upfirdn2d) with the remaining crop; down -> FIR (Pallas upfirdn2d), then a strided conv
here.

Backward: the vjp of the reference non-fused path on XLA (conv transposes and the batch-reduced
weight gradient are what XLA/cuDNN already do well, and that path never materialises per-sample
weights either). A Pallas backward is future work, to be measured on a GPU/TPU first.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from gan_zoo import checks
from gan_zoo.ops.conv2d_resample import resample_padding
from gan_zoo.ops.modulated_conv2d import modulated_conv2d as modulated_conv2d_xla
from gan_zoo.ops.upfirdn2d import filter_size
from kernels_pallas import _common
from kernels_pallas.upfirdn2d import upfirdn2d


@dataclasses.dataclass(frozen=True)
class BlockSizes:
    """Tile sizes: output steps (pixels / up) per tile along H and W, output channels per tile."""
    block_h: int = 16  # output steps per tile along H
    block_w: int = 16  # output steps per tile along W (tile pixels = block_h * block_w rows)
    block_o: int = 128  # output channels per tile (all of O when O is smaller or not a multiple)

    def __post_init__(self):
        _common.check_block_sizes(self, "modulated_conv2d")


@dataclasses.dataclass(frozen=True)
class _Geometry:
    """The static (hashable) arguments, normalised."""
    up: int
    down: int
    padding: tuple  # (x0, x1, y0, y1) as given by the user
    demodulate: bool
    flip_weight: bool
    block_sizes: BlockSizes
    interpret: bool


# -------------------------------------------------------------------------------------------------
# Kernel.


def _modulated_conv2d_kernel(*refs, plan_h, plan_w, th, tw, kw, demodulate):
    # Inputs: th.nb * tw.nb neighbouring blocks of x, each [1, tq_h, Dh, tq_w, Dw, I];
    #         styles [1, 1, I]; weight taps [kh*kw, I, Ob] (correlation order);
    #         w2 = sum_k w^2 [I, Ob] (for the demodulation).
    # Output: [1, tq_h, Uh, tq_w, Uw, Ob].
    *x_refs, s_ref, w_ref, w2_ref, o_ref = refs
    s = s_ref[0].astype(jnp.float32)  # [1, I]
    x = _common.assemble(x_refs, th.nb, tw.nb) * s[0]  # Modulate, eq. 1: x * s. [Mh,Dh,Mw,Dw,I]
    i, ob = x.shape[-1], o_ref.shape[-1]

    def tap(jy, jx, v):  # [tq_h, tq_w, I] @ [I, Ob]
        w = w_ref[jy * kw + jx].astype(jnp.float32)
        y = jnp.dot(v.reshape(th.tq * tw.tq, i), w, preferred_element_type=jnp.float32)
        return y.reshape(th.tq, tw.tq, ob)

    y = _common.polyphase_2d(x, plan_h, plan_w, th.tq, tw.tq, tap)  # Conv. [tq_h,Uh,tq_w,Uw,Ob]
    if demodulate:  # Eq. 3: sigma_j^-1 = rsqrt(sum_i s_i^2 sum_k w_ijk^2 + eps).
        w2 = w2_ref[...].astype(jnp.float32)
        d = jax.lax.rsqrt(jnp.dot(s * s, w2, preferred_element_type=jnp.float32) + 1e-8)
        y = y * d[0]
    o_ref[0] = y.astype(o_ref.dtype)


def _conv_call(x, weight, styles, g: _Geometry, up: int, down: int, pad):
    """Modulated conv of x with `up` zero insertion, padding `pad` >= -k and stride `down`."""
    n, h, w, i = x.shape
    kh, kw, _, o = weight.shape
    x0, x1, y0, y1 = pad
    out_w = (w * up + x0 + x1 - kw + down) // down
    out_h = (h * up + y0 + y1 - kh + down) // down
    plan_w = _common.make_plan(up, down, x0, kw, out_w)
    plan_h = _common.make_plan(up, down, y0, kh, out_h)
    bs = g.block_sizes
    th = _common.tile_axis(plan_h.q_out, plan_h.halo, bs.block_h)
    tw = _common.tile_axis(plan_w.q_out, plan_w.halo, bs.block_w, multiple=8)
    ob = bs.block_o if o > bs.block_o and o % bs.block_o == 0 else o

    wt = weight.astype(jnp.float32)
    w2 = jnp.sum(jnp.square(wt), axis=(0, 1))  # [I, O]
    if not g.flip_weight:  # A true convolution: correlate with the flipped kernel.
        wt = jnp.flip(wt, axis=(0, 1))
    wt = wt.reshape(kh * kw, i, o)
    xs = _common.split_input(x, (plan_h, plan_w), (th, tw))  # [N, Mh, Dh, Mw, Dw, I]
    kernel = functools.partial(_modulated_conv2d_kernel, plan_h=plan_h, plan_w=plan_w, th=th,
                               tw=tw, kw=kw, demodulate=g.demodulate)
    y = pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct(
            (n, th.n_tiles * th.tq, plan_h.U, tw.n_tiles * tw.tq, plan_w.U, o), x.dtype),
        grid=(n, th.n_tiles, tw.n_tiles, o // ob),
        in_specs=_common.halo_specs((1, th.tq, plan_h.D, tw.tq, plan_w.D, i), th, tw,
                                    chan_axis_map=lambda c: 0)
        + [pl.BlockSpec((1, 1, i), lambda b, r, c, k: (b, 0, 0)),
           pl.BlockSpec((kh * kw, i, ob), lambda b, r, c, k: (0, 0, k)),
           pl.BlockSpec((i, ob), lambda b, r, c, k: (0, k))],
        out_specs=pl.BlockSpec((1, th.tq, plan_h.U, tw.tq, plan_w.U, ob),
                               lambda b, r, c, k: (b, r, 0, c, 0, k)),
        interpret=g.interpret,
        name="modulated_conv2d",
    )(*([xs] * (th.nb * tw.nb)), styles.astype(jnp.float32)[:, None, :], wt, w2)
    y = y.reshape(n, th.n_tiles * th.tq * plan_h.U, tw.n_tiles * tw.tq * plan_w.U, o)
    return y[:, :out_h, :out_w]


def _modulated_conv2d_call(x, weight, styles, f, g: _Geometry):
    """conv2d_resample's schedule around the kernel (see the module docstring)."""
    kh, kw = weight.shape[:2]
    fw, fh = filter_size(f)
    up, down = g.up, g.down
    p = resample_padding(g.padding, fw, fh, up, down)
    fir = functools.partial(upfirdn2d, interpret=g.interpret)
    if up > 1:  # Transposed conv (non-negative padding), FIR with the crop, optional down-FIR.
        y = _conv_call(x, weight, styles, g, up, 1, tuple(max(v, 0) for v in p))
        y = fir(y, f, padding=[min(v, 0) for v in p], gain=up**2)
        return fir(y, f, down=down) if down > 1 else y
    if down > 1:  # FIR at full rate, then a strided conv.
        return _conv_call(fir(x, f, padding=p), weight, styles, g, 1, down, (0, 0, 0, 0))
    return _conv_call(x, weight, styles, g, 1, 1, p)


# -------------------------------------------------------------------------------------------------
# Forward / backward.


def _modulated_conv2d_fwd(x, weight, styles, f, g):
    return _modulated_conv2d(x, weight, styles, f, g), (x, weight, styles, f)


def _modulated_conv2d_bwd(g, res, dy):
    """vjp of the reference's non-fused path on XLA (no per-sample weights there either)."""
    x, weight, styles, f = res
    fn = lambda x, weight, styles: modulated_conv2d_xla(
        x, weight, styles, up=g.up, down=g.down, padding=g.padding, resample_filter=f,
        demodulate=g.demodulate, flip_weight=g.flip_weight, fused_modconv=False, impl="xla")
    _, vjp = jax.vjp(fn, x, weight, styles)
    return (*vjp(dy), None if f is None else jnp.zeros_like(f))


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _modulated_conv2d(x, weight, styles, f, g):
    return _modulated_conv2d_call(x, weight, styles, f, g)
_modulated_conv2d.defvjp(_modulated_conv2d_fwd, _modulated_conv2d_bwd)  # noqa: E305


# -------------------------------------------------------------------------------------------------
# Public op.


def modulated_conv2d(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                     demodulate=True, flip_weight=True, fused_modconv=True, block_sizes=None,
                     interpret=None):
    """Pallas twin of `gan_zoo.ops.modulated_conv2d` (same arguments and result).

    fused_modconv only picks between two equal formulations in the reference; the kernel has one.
    Args (beyond the op's): block_sizes: `BlockSizes`; interpret: None runs interpret mode exactly
      on CPU.
    Returns: [N, H', W', O].
    """
    del fused_modconv  # Same math either way; the kernel never forms per-sample weights.
    checks.check_rank("modulated_conv2d: x", x, 4, "[N, H, W, I]")
    checks.check_rank("modulated_conv2d: weight", weight, 4, "[kh, kw, I, O]")
    checks.check_shape("modulated_conv2d: x", x, [None, None, None, weight.shape[2]])
    checks.check_shape("modulated_conv2d: styles", styles, [x.shape[0], weight.shape[2]])
    for name, v in (("up", up), ("down", down)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"modulated_conv2d: {name} must be a positive int, got {v!r}")
    f = None if resample_filter is None else jnp.asarray(resample_filter, jnp.float32)
    if (up > 1 or down > 1) and f is None:
        raise ValueError("modulated_conv2d: up/down > 1 needs a resample_filter")
    g = _Geometry(up=up, down=down, padding=checks.padding4("modulated_conv2d: padding", padding),
                  demodulate=bool(demodulate), flip_weight=bool(flip_weight),
                  block_sizes=block_sizes or BlockSizes(),
                  interpret=_common.default_interpret(interpret))
    call = _common.shard_over_batch(lambda x, w, s, f: _modulated_conv2d(x, w, s, f, g),
                                    (True, False, True, False), x.shape[0])
    y = call(x, weight, styles, f)
    return y if noise is None else y + noise.astype(y.dtype)
