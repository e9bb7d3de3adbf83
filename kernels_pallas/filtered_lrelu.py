"""Pallas filtered leaky ReLU (StyleGAN3 §3.2): bias, up-FIR, lrelu*gain, clamp, down-FIR fused.

Same semantics and signature as `gan_zoo.ops.filtered_lrelu` (NHWC). Each kernel instance makes
one output tile: it upsamples its input tile polyphase (`kernels_pallas._common`) into a
[Zh, Zw, Cb] intermediate held on chip, applies the nonlinearity there, and filters + decimates
it straight into the output block, so the upsampled signal (up^2 times the input) never reaches
HBM. The bias is added in the wrapper, where XLA fuses it into the (low-resolution) pad.

Backward (`bwd_impl`): the vjp of the same chain built from the Pallas upfirdn2d ("pallas",
default) or from the jnp reference ("xla"). Either recomputes the up-FIR instead of storing
anything in the forward; the upsampled intermediate exists in HBM during the backward only. A
fused Pallas backward (official CUDA: forward writes a 2-bit sign/clamp mask at the upsampled
resolution) is future work: it must be measured against these on a GPU/TPU first.
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from gan_zoo import checks
from gan_zoo.ops.bias_act import bias_act
from gan_zoo.ops.filtered_lrelu import filtered_lrelu_output_size
from gan_zoo.ops.upfirdn2d import filter_size
from gan_zoo.ops.upfirdn2d import upfirdn2d as upfirdn2d_xla
from kernels_pallas import _common
from kernels_pallas.upfirdn2d import upfirdn2d as upfirdn2d_pallas

BWD_IMPLS = ("pallas", "xla")


@dataclasses.dataclass(frozen=True)
class BlockSizes:
    """Tile sizes in output samples (rounded up to what the up/down ratio and TPU tiling need)."""
    block_h: int = 32  # output rows per tile
    block_w: int = 32  # output columns per tile
    block_c: int = 128  # channels per tile (all of C when C is smaller or not a multiple)

    def __post_init__(self):
        _common.check_block_sizes(self, "filtered_lrelu")


@dataclasses.dataclass(frozen=True)
class _Geometry:
    """The static (hashable) arguments, normalised."""
    up: int
    down: int
    padding: tuple  # (x0, x1, y0, y1), in the upsampled domain
    gain: float
    slope: float
    clamp: float | None
    flip_filter: bool
    block_sizes: BlockSizes
    interpret: bool
    bwd_impl: str


@dataclasses.dataclass(frozen=True)
class _AxisTiles:
    """One axis of the fused kernel: stage 1 (up-FIR) and stage 2 (down-FIR) plans and tiles."""
    up_plan: _common.AxisPlan  # x -> Z, U = up, D = 1
    down_plan: _common.AxisPlan  # Z -> y, U = 1, D = down
    tiling: _common.AxisTiling  # in x blocks of tq = To*down/up samples
    to: int  # output samples per tile
    zq: int  # stage-1 steps per tile (Z samples / up)


def _axis_tiles(up, down, pad0, ku, kd, n_out, block, multiple):
    """Tiles of `to` outputs; each needs Z samples [i*to*down, i*to*down + zlen) from stage 1."""
    mu = up // math.gcd(up, down)  # to*down must be a multiple of up: tiles start on a phase 0
    step = mu * multiple // math.gcd(mu, multiple)
    to = -(-min(block, n_out) // step) * step
    lcm = up * down // math.gcd(up, down)
    zlen = -(-(to * down + kd - 1) // lcm) * lcm
    up_plan = _common.make_plan(up, 1, pad0, ku, n_out)
    down_plan = _common.make_plan(1, down, 0, kd, to)
    tq = to * down // up
    nb = 1 + -(-(zlen // up + up_plan.halo - tq) // tq)
    tiling = _common.AxisTiling(tq, -(-n_out // to), max(nb, 1))
    return _AxisTiles(up_plan, down_plan, tiling, to, zlen // up)


def _fir_stage(v, plan_h, plan_w, qh, qw, f, k_w, separable):
    """Polyphase FIR of v [Mh, Dh, Mw, Dw, C] -> [qh, Uh, qw, Uw, C] (f: taps [k, C])."""
    if separable:
        v = _common.fir_axis(v, plan_w, qw, 2, f)
        return _common.fir_axis(v, plan_h, qh, 0, f)
    return _common.polyphase_2d(v, plan_h, plan_w, qh, qw, lambda jy, jx, s: s * f[jy * k_w + jx])


# -------------------------------------------------------------------------------------------------
# Kernel.


def _filtered_lrelu_kernel(*refs, ah, aw, g, up_sep, down_sep, ku_w, kd_w):
    # Inputs: nb_h * nb_w neighbouring blocks of (x + b), each [1, tq_h, 1, tq_w, 1, Cb];
    #         up taps [ku, Cb] (gain up^2 folded in), down taps [kd, Cb] (correlation weights).
    # Output: [1, to_h, to_w, Cb].
    *x_refs, fu_ref, fd_ref, o_ref = refs
    x = _common.assemble(x_refs, ah.tiling.nb, aw.tiling.nb)  # [Mh, 1, Mw, 1, Cb]
    cb = x.shape[-1]

    # Upsample + FIR (stage 1): Z tile [Zh, Zw, Cb], kept on chip.
    z = _fir_stage(x, ah.up_plan, aw.up_plan, ah.zq, aw.zq, fu_ref[...].astype(jnp.float32),
                   ku_w, up_sep)  # [zq_h, up, zq_w, up, Cb]

    # Leaky ReLU, gain, clamp (bias_act semantics).
    z = jnp.where(z > 0, z, z * g.slope) * g.gain
    if g.clamp is not None and g.clamp >= 0:
        z = jnp.clip(z, -g.clamp, g.clamp)

    # FIR + downsample (stage 2) from Z cut into blocks of `down`.
    zh, zw = ah.zq * g.up, aw.zq * g.up
    z = z.reshape(zh // g.down, g.down, zw // g.down, g.down, cb)
    y = _fir_stage(z, ah.down_plan, aw.down_plan, ah.to, aw.to, fd_ref[...].astype(jnp.float32),
                   kd_w, down_sep)  # [to_h, 1, to_w, 1, Cb]
    o_ref[0] = y.reshape(ah.to, aw.to, cb).astype(o_ref.dtype)


def _taps(f, gain, flip_filter, c):
    """Filter -> correlation weights times gain**(ndim/2), broadcast over channels: [k, C]."""
    t = f * (gain ** (f.ndim / 2))
    if not flip_filter:
        t = jnp.flip(t, axis=tuple(range(f.ndim)))
    return jnp.broadcast_to(t.reshape(-1, 1), (t.size, c))


def _filtered_lrelu_call(x, fu, fd, b, g: _Geometry):
    """The fused forward launch (no custom_vjp)."""
    n, h, w, c = x.shape
    x0, _, y0, _ = g.padding
    (fu_w, fu_h), (fd_w, fd_h) = filter_size(fu), filter_size(fd)
    out_h, out_w = filtered_lrelu_output_size(h, w, (fu_h, fu_w), (fd_h, fd_w), g.up, g.down,
                                              g.padding)
    bs = g.block_sizes
    ah = _axis_tiles(g.up, g.down, y0, fu_h, fd_h, out_h, bs.block_h, 1)
    aw = _axis_tiles(g.up, g.down, x0, fu_w, fd_w, out_w, bs.block_w, 8)
    cb = c if c <= bs.block_c or c % bs.block_c else bs.block_c

    xb = x + b.astype(x.dtype)  # Fused by XLA into the pad below.
    xs = _common.split_input(xb, (ah.up_plan, aw.up_plan), (ah.tiling, aw.tiling))
    fu_t, fd_t = _taps(fu, g.up ** 2, g.flip_filter, c), _taps(fd, 1, g.flip_filter, c)
    kernel = functools.partial(_filtered_lrelu_kernel, ah=ah, aw=aw, g=g, up_sep=fu.ndim == 1,
                               down_sep=fd.ndim == 1, ku_w=fu_w, kd_w=fd_w)
    th, tw = ah.tiling, aw.tiling
    y = pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((n, th.n_tiles * ah.to, tw.n_tiles * aw.to, c), x.dtype),
        grid=(n, th.n_tiles, tw.n_tiles, c // cb),
        in_specs=_common.halo_specs((1, th.tq, 1, tw.tq, 1, cb), th, tw)
        + [pl.BlockSpec((fu_t.shape[0], cb), lambda i, j, k, l: (0, l)),
           pl.BlockSpec((fd_t.shape[0], cb), lambda i, j, k, l: (0, l))],
        out_specs=pl.BlockSpec((1, ah.to, aw.to, cb), lambda i, j, k, l: (i, j, k, l)),
        interpret=g.interpret,
        name="filtered_lrelu",
    )(*([xs] * (th.nb * tw.nb)), fu_t, fd_t)
    return y[:, :out_h, :out_w]


# -------------------------------------------------------------------------------------------------
# Forward / backward.


def _composed(x, fu, fd, b, g: _Geometry):
    """The reference chain (gan_zoo.ops.filtered_lrelu steps 1-5) over a chosen upfirdn2d."""
    upfirdn2d = upfirdn2d_pallas if g.bwd_impl == "pallas" else upfirdn2d_xla
    kw = {"interpret": g.interpret} if g.bwd_impl == "pallas" else {"impl": "xla"}
    x = x + b.astype(x.dtype)
    x = upfirdn2d(x, fu, up=g.up, padding=g.padding, gain=g.up**2, flip_filter=g.flip_filter, **kw)
    x = bias_act(x, act="lrelu", alpha=g.slope, gain=g.gain, clamp=g.clamp, impl="xla")
    return upfirdn2d(x, fd, down=g.down, flip_filter=g.flip_filter, **kw)


def _filtered_lrelu_fwd(x, fu, fd, b, g):
    return _filtered_lrelu(x, fu, fd, b, g), (x, fu, fd, b)


def _filtered_lrelu_bwd(g, res, dy):
    """vjp of the composed chain: recomputes the up-FIR (nothing but the inputs is stored)."""
    x, fu, fd, b = res
    _, vjp = jax.vjp(lambda x, b: _composed(x, fu, fd, b, g), x, b)
    dx, db = vjp(dy)
    return dx, jnp.zeros_like(fu), jnp.zeros_like(fd), db  # Filters are constants.


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _filtered_lrelu(x, fu, fd, b, g):
    return _filtered_lrelu_call(x, fu, fd, b, g)
_filtered_lrelu.defvjp(_filtered_lrelu_fwd, _filtered_lrelu_bwd)  # noqa: E305


# -------------------------------------------------------------------------------------------------
# Public op.


def filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=2**0.5, slope=0.2,
                   clamp=None, flip_filter=False, block_sizes=None, interpret=None,
                   bwd_impl="pallas"):
    """Pallas twin of `gan_zoo.ops.filtered_lrelu` (same arguments and result; see its docstring).

    Args (beyond the op's): block_sizes: `BlockSizes`; interpret: None runs interpret mode exactly
      on CPU; bwd_impl: "pallas" | "xla", what the backward chain's upfirdn2d runs on.
    Returns: [N, out_h, out_w, C] (`gan_zoo.ops.filtered_lrelu.filtered_lrelu_output_size`).
    """
    checks.check_rank("filtered_lrelu: x", x, 4, "[N, H, W, C]")
    for name, v in (("up", up), ("down", down)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"filtered_lrelu: {name} must be a positive int, got {v!r}")
    if bwd_impl not in BWD_IMPLS:
        raise ValueError(f"filtered_lrelu: bwd_impl must be one of {BWD_IMPLS}, got {bwd_impl!r}")
    g = _Geometry(up=up, down=down, padding=checks.padding4("filtered_lrelu: padding", padding),
                  gain=float(gain), slope=float(slope),
                  clamp=None if clamp is None else float(clamp), flip_filter=bool(flip_filter),
                  block_sizes=block_sizes or BlockSizes(),
                  interpret=_common.default_interpret(interpret), bwd_impl=bwd_impl)
    one = jnp.ones([1, 1], jnp.float32)
    fu = one if fu is None else jnp.asarray(fu, jnp.float32)
    fd = one if fd is None else jnp.asarray(fd, jnp.float32)
    b = jnp.zeros([x.shape[-1]], x.dtype) if b is None else jnp.asarray(b)
    checks.check_shape("filtered_lrelu: b", b, [x.shape[-1]])
    (fu_w, fu_h), (fd_w, fd_h) = filter_size(fu), filter_size(fd)
    out_h, out_w = filtered_lrelu_output_size(x.shape[1], x.shape[2], (fu_h, fu_w), (fd_h, fd_w),
                                              up, down, g.padding)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"filtered_lrelu: padding {padding} leaves no output for input "
                         f"{tuple(x.shape)} (up={up}, down={down})")
    call = _common.shard_over_batch(lambda x, fu, fd, b: _filtered_lrelu(x, fu, fd, b, g),
                                    (True, False, False, False), x.shape[0])
    return call(x, fu, fd, b)
