"""Machinery shared by the kernels: polyphase plans, halo tiling, interpret default, batch sharding.

Every FIR-like op here is, per axis, out[o] = sum_j g[j] * P[o*down + j] with P the input after
zero insertion (`up`) and padding (`pad0` before). Writing o = q*U + r (U = up/gcd, D = down/gcd),
output phase r reads the plain input at x[q*D + c] for the taps j with
(r*down + j - pad0) % up == 0, c = (r*down + j - pad0) // up. So the kernels never touch a
zero-inserted or discarded sample: the wrapper pads/crops x once (low resolution), splits each
axis into [M, D] blocks (a free reshape), and the kernel reads contiguous slices `xs[q + m, d]`
and writes each output phase r into its own slot of a [Q, U] layout (again a free reshape back
to [Q*U]).

Tiles: a kernel instance computes `tq` consecutive q of one axis. It needs `tq + halo` blocks of
input, which it reads as `nb` neighbouring BlockSpec blocks (same array passed `nb` times with
shifted index maps): plain Blocked specs, so one definition serves Triton, Mosaic and interpret.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.sharding import PartitionSpec as P

# Mesh axes that never carry the batch (tensor parallel); every other non-manual axis does.
NON_BATCH_AXES = ("model", "tensor")


def check_block_sizes(sizes, op: str) -> None:
    """Raises ValueError unless every field of a BlockSizes dataclass is a positive int."""
    for field in dataclasses.fields(sizes):
        v = getattr(sizes, field.name)
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{op} BlockSizes.{field.name}: expected a positive int, got {v!r}")


def default_interpret(interpret):
    """None -> interpret mode exactly when running on CPU (no Pallas lowering there)."""
    return jax.default_backend() == "cpu" if interpret is None else bool(interpret)


@dataclasses.dataclass(frozen=True)
class AxisPlan:
    """Polyphase plan of one axis (see the module docstring)."""
    U: int  # output phases per step
    D: int  # input samples per block (the decimation left after the up/down gcd)
    taps: tuple  # per output phase r: ((j, m, d), ...): tap j reads block q + m, phase d
    lo: int  # samples to pad (negative: crop) before x so that block 0 holds the first read
    halo: int  # largest block offset m
    n_out: int  # output samples
    q_out: int  # ceil(n_out / U) output steps


def make_plan(up: int, down: int, pad0: int, k: int, n_out: int) -> AxisPlan:
    """Plan of out[o] = sum_j g[j] * P[o*down + j] (j < k), P = pad(zero_insert(x, up), pad0)."""
    g = math.gcd(up, down)
    U, D = up // g, down // g
    reads = [[(j, (r * down + j - pad0) // up) for j in range(k)
              if (r * down + j - pad0) % up == 0] for r in range(U)]
    cmin = min((c for phase in reads for _, c in phase), default=0)
    taps = tuple(tuple((j, (c - cmin) // D, (c - cmin) % D) for j, c in phase) for phase in reads)
    halo = max((m for phase in taps for _, m, _ in phase), default=0)
    return AxisPlan(U, D, taps, -cmin, halo, n_out, -(-n_out // U))


@dataclasses.dataclass(frozen=True)
class AxisTiling:
    """How one axis is cut into kernel tiles of `tq` output steps."""
    tq: int  # output steps per tile (= input blocks per BlockSpec block)
    n_tiles: int
    nb: int  # neighbouring input blocks each tile reads (1 + halo blocks)

    @property
    def in_blocks(self) -> int:
        return (self.n_tiles + self.nb - 1) * self.tq


def tile_axis(q_out: int, need: int, block: int, multiple: int = 1) -> AxisTiling:
    """Tiles of min(block, q_out) steps (rounded up to `multiple`) reading `need` blocks beyond."""
    tq = -(-min(block, q_out) // multiple) * multiple
    return AxisTiling(tq, -(-q_out // tq), 1 + -(-need // tq))


def split_input(x, plans, tilings):
    """x [N, H, W, C] -> [N, Mh, Dh, Mw, Dw, C]: pad/crop per plan, cut into blocks of D."""
    (ph, pw), (th, tw) = plans, tilings
    n, h, w, c = x.shape
    hi_h = th.in_blocks * ph.D - h - ph.lo
    hi_w = tw.in_blocks * pw.D - w - pw.lo
    zero = jnp.zeros((), x.dtype)
    x = jax.lax.pad(x, zero, [(0, 0, 0), (ph.lo, hi_h, 0), (pw.lo, hi_w, 0), (0, 0, 0)])
    return x.reshape(n, th.in_blocks, ph.D, tw.in_blocks, pw.D, c)


def halo_specs(block, th: AxisTiling, tw: AxisTiling, chan_axis_map=lambda c: c):
    """BlockSpecs reading the nb_h x nb_w neighbouring blocks of a [N, Mh, Dh, Mw, Dw, C] array.

    Grid is (n, i, j, c). `chan_axis_map` maps the grid's channel index to the block index of the
    last axis (e.g. always 0 for a full-channel block).
    """
    def spec(a, b):
        return pl.BlockSpec(block, lambda n, i, j, c: (n, i + a, 0, j + b, 0, chan_axis_map(c)))
    return [spec(a, b) for a in range(th.nb) for b in range(tw.nb)]


def assemble(refs, nb_h: int, nb_w: int):
    """The neighbouring blocks read by `halo_specs`, joined into one [Mh, Dh, Mw, Dw, C] tile."""
    rows = []
    for a in range(nb_h):
        row = [refs[a * nb_w + b][0].astype(jnp.float32) for b in range(nb_w)]
        rows.append(row[0] if nb_w == 1 else jnp.concatenate(row, axis=2))
    return rows[0] if nb_h == 1 else jnp.concatenate(rows, axis=0)


def polyphase_2d(v, plan_h: AxisPlan, plan_w: AxisPlan, qh: int, qw: int, tap):
    """sum over the planned taps of tap(jy, jx, v[my:my+qh, dy, mx:mx+qw, dx]), per output phase.

    v: [Mh, Dh, Mw, Dw, ...]. tap returns [qh, qw, ...] (None: skip). Returns [qh, Uh, qw, Uw, ...].
    """
    rows = []
    for ry in range(plan_h.U):
        cols = []
        for rx in range(plan_w.U):
            acc = None
            for jy, my, dy in plan_h.taps[ry]:
                for jx, mx, dx in plan_w.taps[rx]:
                    t = tap(jy, jx, v[my:my + qh, dy, mx:mx + qw, dx])
                    if t is not None:
                        acc = t if acc is None else acc + t
            cols.append(acc)
        rows.append(cols)
    shape = next(a.shape for cols in rows for a in cols if a is not None)
    rows = [[jnp.zeros(shape, jnp.float32) if a is None else a for a in cols] for cols in rows]
    return jnp.stack([jnp.stack(cols, axis=2) for cols in rows], axis=1)


def fir_axis(v, plan: AxisPlan, q: int, axis: int, weights):
    """1-D polyphase FIR along `axis` (split as [M, D] at axis, axis+1) -> [.., q, U, ..] there.

    weights[j] broadcasts against the slices (e.g. a [C] row of the broadcast filter).
    """
    lead = (slice(None),) * axis
    phases = []
    for r in range(plan.U):
        acc = None
        for j, m, d in plan.taps[r]:
            t = v[lead + (slice(m, m + q), d)] * weights[j]
            acc = t if acc is None else acc + t
        if acc is None:
            shape = v.shape[:axis] + (q,) + v.shape[axis + 2:]
            acc = jnp.zeros(shape, jnp.float32)
        phases.append(acc)
    return jnp.stack(phases, axis=axis + 1)


def _mesh_axes():
    """(active mesh, its axes not yet manual) or (None, ()) when no mesh is set."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return None, ()
    manual = set(mesh.manual_axes)
    return mesh, tuple(a for a in mesh.axis_names if a not in manual)


def batch_axes(n: int):
    """Mesh axes to shard a batch of n over: the active (`jax.set_mesh`) mesh's non-manual axes
    minus the tensor-parallel ones, or () when their size does not divide n."""
    mesh, free = _mesh_axes()
    axes = tuple(a for a in free if a not in NON_BATCH_AXES)
    if mesh is None or not axes or n % math.prod(mesh.shape[a] for a in axes):
        return ()
    return axes


def shard_over_batch(fn, batched, n: int):
    """fn(*args) inside jax.shard_map over the batch axis when a mesh is active.

    Pallas calls cannot be auto-partitioned, so with a mesh every device runs the kernel on its
    own batch shard. batched: per positional arg, True if its axis 0 is the batch (others are
    replicated; None args pass through). Outputs are batched. A batch the mesh axes do not divide
    runs replicated (every device computes all of it: correct, not fast). Without a mesh, or
    inside a shard_map over all mesh axes, fn runs as is.
    """
    mesh, free = _mesh_axes()
    if not free:
        return fn
    axes = batch_axes(n)
    spec = P(axes) if axes else P()
    explicit = set(mesh.explicit_axes)

    def place(a, s):
        # Explicit axes: shard_map needs the args already laid out as in_specs (jax.reshard);
        # auto axes: a sharding constraint lets XLA insert the same data movement.
        if a is None:
            return a
        return jax.reshard(a, s) if explicit else jax.lax.with_sharding_constraint(a, s)

    def wrapped(*args):
        in_specs = tuple(spec if b and a is not None else P() for a, b in zip(args, batched))
        args = tuple(place(a, s) for a, s in zip(args, in_specs))
        return jax.shard_map(fn, in_specs=in_specs, out_specs=spec, check_vma=False)(*args)
    return wrapped
