"""Pallas upfirdn2d: zero insertion, pad/crop, FIR (separable or 2-D) and decimation in one pass.

Same semantics and signature as `gan_zoo.ops.upfirdn2d` (NHWC). The kernel is polyphase (see
`kernels_pallas._common`): it reads only real input samples and computes only kept outputs, so the
cost is taps/(up*down) of the naive zero-insert-then-filter, and nothing but x and y touch HBM.
The backward pass is itself an upfirdn2d (official `_upfirdn2d_cuda` rule): the transpose of an
up-FIR is a down-FIR with the flipped filter and adjusted padding. Filters are constants (their
cotangent is zero), as in the official CUDA op.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from gan_zoo import checks
from gan_zoo.ops.upfirdn2d import filter_size
from kernels_pallas import _common


@dataclasses.dataclass(frozen=True)
class BlockSizes:
    """Tile sizes, in output steps (output rows/cols divided by the up/down phase count U)."""
    block_h: int = 32  # output steps per tile along H
    block_w: int = 32  # output steps per tile along W
    block_c: int = 128  # channels per tile (all of C when C is smaller or not a multiple)

    def __post_init__(self):
        _common.check_block_sizes(self, "upfirdn2d")


@dataclasses.dataclass(frozen=True)
class _Geometry:
    """The static (hashable) arguments, normalised."""
    up: tuple  # (upx, upy)
    down: tuple  # (downx, downy)
    padding: tuple  # (x0, x1, y0, y1)
    flip_filter: bool
    gain: float
    block_sizes: BlockSizes
    interpret: bool


def _channel_block(c: int, block_c: int) -> int:
    return block_c if c > block_c and c % block_c == 0 else c


# -------------------------------------------------------------------------------------------------
# Kernel.


def _upfirdn2d_kernel(*refs, plan_h, plan_w, th, tw, fw, separable):
    # Inputs: th.nb * tw.nb neighbouring blocks of x, each [1, tq_h, Dh, tq_w, Dw, Cb];
    #         taps [k, Cb] (separable) or [fh*fw, Cb], the correlation weights per channel.
    # Output: [1, tq_h, Uh, tq_w, Uw, Cb], output phase (ry, rx) of steps (q_h, q_w).
    *x_refs, f_ref, o_ref = refs
    x = _common.assemble(x_refs, th.nb, tw.nb)  # [Mh, Dh, Mw, Dw, Cb] float32
    f = f_ref[...].astype(jnp.float32)
    if separable:
        y = _common.fir_axis(x, plan_w, tw.tq, 2, f)  # [Mh, Dh, tq_w, Uw, Cb]
        y = _common.fir_axis(y, plan_h, th.tq, 0, f)  # [tq_h, Uh, tq_w, Uw, Cb]
    else:
        y = _common.polyphase_2d(x, plan_h, plan_w, th.tq, tw.tq,
                                 lambda jy, jx, s: s * f[jy * fw + jx])
    o_ref[0] = y.astype(o_ref.dtype)


def _upfirdn2d_call(x, f, g: _Geometry):
    """The forward kernel launch (no custom_vjp). x [N, H, W, C], f [k] or [fh, fw] float32."""
    n, h, w, c = x.shape
    (upx, upy), (downx, downy), (x0, x1, y0, y1) = g.up, g.down, g.padding
    fw, fh = filter_size(f)
    out_w = (w * upx + x0 + x1 - fw + downx) // downx
    out_h = (h * upy + y0 + y1 - fh + downy) // downy
    plan_w = _common.make_plan(upx, downx, x0, fw, out_w)
    plan_h = _common.make_plan(upy, downy, y0, fh, out_h)
    bs = g.block_sizes
    th = _common.tile_axis(plan_h.q_out, plan_h.halo, bs.block_h)
    tw = _common.tile_axis(plan_w.q_out, plan_w.halo, bs.block_w)
    cb = _channel_block(c, bs.block_c)

    # Correlation weights (the reference is a true convolution unless flip_filter), with gain.
    taps = f * (g.gain ** (f.ndim / 2))
    if not g.flip_filter:
        taps = jnp.flip(taps, axis=tuple(range(f.ndim)))
    taps = jnp.broadcast_to(taps.reshape(-1, 1), (taps.size, c))  # [k, C], channels on lanes

    xs = _common.split_input(x, (plan_h, plan_w), (th, tw))  # [N, Mh, Dh, Mw, Dw, C]
    kernel = functools.partial(_upfirdn2d_kernel, plan_h=plan_h, plan_w=plan_w, th=th, tw=tw,
                               fw=fw, separable=f.ndim == 1)
    y = pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct(
            (n, th.n_tiles * th.tq, plan_h.U, tw.n_tiles * tw.tq, plan_w.U, c), x.dtype),
        grid=(n, th.n_tiles, tw.n_tiles, c // cb),
        in_specs=_common.halo_specs((1, th.tq, plan_h.D, tw.tq, plan_w.D, cb), th, tw)
        + [pl.BlockSpec((taps.shape[0], cb), lambda b, i, j, k: (0, k))],
        out_specs=pl.BlockSpec((1, th.tq, plan_h.U, tw.tq, plan_w.U, cb),
                               lambda b, i, j, k: (b, i, 0, j, 0, k)),
        interpret=g.interpret,
        name="upfirdn2d",
    )(*([xs] * (th.nb * tw.nb)), taps)
    y = y.reshape(n, th.n_tiles * th.tq * plan_h.U, tw.n_tiles * tw.tq * plan_w.U, c)
    return y[:, :out_h, :out_w]


# -------------------------------------------------------------------------------------------------
# Forward / backward.


def _upfirdn2d_fwd(x, f, g):
    return _upfirdn2d(x, f, g), (f, x.shape)


def _upfirdn2d_bwd(g, res, dy):
    """dx = upfirdn2d(dy, f, up=down, down=up, flipped filter, padding from the official rule)."""
    f, (_, h, w, _) = res
    (upx, upy), (downx, downy), (x0, _, y0, _) = g.up, g.down, g.padding
    fw, fh = filter_size(f)
    out_h, out_w = dy.shape[1:3]
    p = (fw - x0 - 1, w * upx - out_w * downx + x0 - upx + 1,
         fh - y0 - 1, h * upy - out_h * downy + y0 - upy + 1)
    gt = dataclasses.replace(g, up=g.down, down=g.up, padding=p, flip_filter=not g.flip_filter)
    dx = _upfirdn2d(dy, f, gt)
    assert dx.shape[1:3] == (h, w), (dx.shape, h, w)
    return dx, jnp.zeros_like(f)  # Filters are constants (as the official CUDA op).


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _upfirdn2d(x, f, g):
    return _upfirdn2d_call(x, f, g)
_upfirdn2d.defvjp(_upfirdn2d_fwd, _upfirdn2d_bwd)  # noqa: E305


# -------------------------------------------------------------------------------------------------
# Public op.


def upfirdn2d(x, f=None, up=1, down=1, padding=0, flip_filter=False, gain=1, block_sizes=None,
              interpret=None):
    """Pallas twin of `gan_zoo.ops.upfirdn2d` (same arguments and result; see its docstring).

    Args (beyond the op's): block_sizes: `BlockSizes` (None: defaults); interpret: None runs the
      kernel in interpret mode exactly on CPU.
    Returns: [N, H', W', C] with W' = (W*upx + x0 + x1 - fw + downx) // downx, likewise H'.
    """
    checks.check_rank("upfirdn2d: x", x, 4, "[N, H, W, C]")
    g = _Geometry(up=checks.int_pair("upfirdn2d: up", up),
                  down=checks.int_pair("upfirdn2d: down", down),
                  padding=checks.padding4("upfirdn2d: padding", padding),
                  flip_filter=bool(flip_filter), gain=float(gain),
                  block_sizes=block_sizes or BlockSizes(),
                  interpret=_common.default_interpret(interpret))
    f = jnp.ones([1, 1], jnp.float32) if f is None else jnp.asarray(f, jnp.float32)
    fw, fh = filter_size(f)
    (upx, upy), (x0, x1, y0, y1) = g.up, g.padding
    if x.shape[2] * upx + x0 + x1 - fw + 1 < 1 or x.shape[1] * upy + y0 + y1 - fh + 1 < 1:
        raise ValueError(f"upfirdn2d: padding {padding} and a {fh}x{fw} filter leave no output "
                         f"for input {tuple(x.shape)} and up={up}")
    call = _common.shard_over_batch(lambda x, f: _upfirdn2d(x, f, g), (True, False), x.shape[0])
    return call(x, f)
