"""FIR ops on one CPU thread: old formulation (depthwise conv over the zero-inserted input) vs the
current gan_zoo.ops (polyphase shifted-slice sums), optionally vs the official PyTorch reference.

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
        taskset -c 0 python benchmarks/fir_ops.py [--stylegan3-path /path/to/stylegan3]

Shapes: StyleGAN2 config-F (upsample2d of the up-conv path and of the RGB skip, downsample2d of D,
conv2d_resample up/down) and StyleGAN3-T 64^2 filtered_lrelu layers (real filters from
`layer_specs`/`layer_filters`). For each op: ms forward and forward+backward (value and grad
of sum(out * R) w.r.t. x; torch: forward with autograd, then backward), median over interleaved
rounds (each sample repeats a short op to >= 50 ms), and the time ratios new/old and new/torch
(< 1: ours is faster); rel_l2 is new vs old. The old formulation lives only here.
"""

import argparse
import dataclasses
import os
import statistics
import sys
import time

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from gan_zoo import ops  # noqa: E402
from gan_zoo.models import stylegan3  # noqa: E402
from gan_zoo.ops.conv2d_resample import conv2d, resample_padding  # noqa: E402
from gan_zoo.ops.upfirdn2d import filter_size  # noqa: E402


# ------------------------------------------------------------------ old formulation (pre-#20)
def _old_depthwise(x, f2d, stride_hw):
    c = x.shape[-1]
    k = jnp.broadcast_to(f2d[:, :, None, None], f2d.shape + (1, c)).astype(x.dtype)
    return jax.lax.conv_general_dilated(x, k, stride_hw, "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=c)


def old_upfirdn2d(x, f, up=1, down=1, padding=(0, 0, 0, 0), gain=1):
    """Zero insertion + pad in one lax.pad, then a depthwise conv (2-D, or two 1-D passes)."""
    x0, x1, y0, y1 = padding
    f = jnp.ones([1, 1]) if f is None else jnp.asarray(f, jnp.float32)
    x = jax.lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (y0, y1 + up - 1, up - 1),
                                                (x0, x1 + up - 1, up - 1), (0, 0, 0)])
    f = jnp.flip(f * (gain ** (f.ndim / 2)), axis=tuple(range(f.ndim)))
    if f.ndim == 2:
        return _old_depthwise(x, f, (down, down))
    x = _old_depthwise(x, f[None, :], (1, down))
    return _old_depthwise(x, f[:, None], (down, 1))


def old_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp):
    x = old_upfirdn2d(x + b, fu, up=up, padding=padding, gain=up**2)
    x = jnp.clip(jnp.where(x >= 0, x, x * slope) * gain, -clamp, clamp)
    return old_upfirdn2d(x, fd, down=down)


def old_conv2d_resample(x, w, f, up=1, down=1, padding=1):
    """The pre-#20 schedule: up = lhs-dilated conv then FIR; down = FIR then strided conv."""
    fw, fh = filter_size(f)
    p = resample_padding((padding,) * 4, fw, fh, up, down)
    if up > 1:
        pos = [max(v, 0) for v in p]
        x = conv2d(x, w, lhs_dilation=up,
                   padding=((pos[2], pos[3] + up - 1), (pos[0], pos[1] + up - 1)))
        return old_upfirdn2d(x, f, padding=[min(v, 0) for v in p], gain=up**2)
    return conv2d(old_upfirdn2d(x, f, padding=p), w, stride=down)


# ------------------------------------------------------------------ cases
@dataclasses.dataclass
class Case:
    name: str
    shapes: list  # NHWC / HWIO input shapes (the first is x, the differentiated input)
    new: object  # fn(*arrays) with gan_zoo.ops
    old: object  # fn(*arrays), old formulation
    torch: object = None  # fn(*torch tensors NCHW/OIHW) -> tensor, or None


def _to_torch(a, perm=None):
    """numpy -> torch tensor; perm (0, 3, 1, 2) for NHWC -> NCHW, (3, 2, 0, 1) for HWIO -> OIHW."""
    import torch
    a = np.asarray(a)
    return torch.from_numpy(np.ascontiguousarray(a if perm is None else a.transpose(perm)))


def _sg2_cases(batch, cap, tops):
    f = ops.setup_filter([1, 3, 3, 1])  # [4, 4], the StyleGAN2 resample filter
    tf = None if tops is None else _to_torch(f)
    t_up = lambda x: tops.upfirdn2d.upsample2d(x, tf, impl="ref")
    t_down = lambda x: tops.upfirdn2d.downsample2d(x, tf, impl="ref")
    t_cu = lambda x, w: tops.conv2d_resample.conv2d_resample(x, w, tf, up=2,
                                                             padding=1)
    t_cd = lambda x, w: tops.conv2d_resample.conv2d_resample(x, w, tf,
                                                             down=2, padding=1)
    c = min(512, cap)
    return [
        Case(f"sg2 upsample2d [{batch},32,32,{c}] 4x4", [(batch, 32, 32, c)],
             lambda x: ops.upsample2d(x, f),
             lambda x: old_upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1), gain=4), t_up),
        Case(f"sg2 rgb skip upsample2d [{batch},128,128,3]", [(batch, 128, 128, 3)],
             lambda x: ops.upsample2d(x, f),
             lambda x: old_upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1), gain=4), t_up),
        Case(f"sg2 D downsample2d [{batch},64,64,{c // 2}]", [(batch, 64, 64, c // 2)],
             lambda x: ops.downsample2d(x, f),
             lambda x: old_upfirdn2d(x, f, down=2, padding=(1, 1, 1, 1)), t_down),
        Case(f"sg2 conv2d_resample up [{batch},32,32,{c // 4}] 3x3",
             [(batch, 32, 32, c // 4), (3, 3, c // 4, c // 4)],
             lambda x, w: ops.conv2d_resample(x, w, f, up=2, padding=1),
             lambda x, w: old_conv2d_resample(x, w, f, up=2), t_cu),
        Case(f"sg2 conv2d_resample down [{batch},64,64,{c // 4}] 3x3",
             [(batch, 64, 64, c // 4), (3, 3, c // 4, c // 4)],
             lambda x, w: ops.conv2d_resample(x, w, f, down=2, padding=1),
             lambda x, w: old_conv2d_resample(x, w, f, down=2), t_cd),
    ]


def _sg3_cases(batch, cap, tops):
    specs = {s.name.split("_")[0]: s for s in stylegan3.layer_specs(64)[1]}
    cases = []
    for key in ("L9", "L8", "L13"):  # 84 px up2/down2; 52->84 up4 (critical path); 84->64 crop
        s = specs[key]
        fu, fd = stylegan3.layer_filters(s)
        n = s.in_size + 2  # modulated conv output (3x3, padding 2)
        kw = dict(up=s.up_factor, down=s.down_factor, padding=list(s.padding), gain=np.sqrt(2),
                  slope=0.2, clamp=256.0)
        c = min(s.out_channels, cap)
        b = np.linspace(-0.5, 0.5, c).astype(np.float32)
        tf = None if tops is None else (_to_torch(fu), _to_torch(fd), _to_torch(b))
        cases.append(Case(
            f"sg3 filtered_lrelu {key} [{batch},{n},{n},{c}] up{s.up_factor} {len(fu)}-tap",
            [(batch, n, n, c)],
            lambda x, fu=fu, fd=fd, b=b, kw=kw: ops.filtered_lrelu(x, fu, fd, b, **kw),
            lambda x, fu=fu, fd=fd, b=b, kw=kw: old_filtered_lrelu(x, fu, fd, b, **kw),
            lambda x, tf=tf, kw=kw: tops.filtered_lrelu.filtered_lrelu(
                x, tf[0], tf[1], tf[2], impl="ref", **kw)))
    return cases


# ------------------------------------------------------------------ timing
def _jax_fns(fn, arrays):
    fwd = jax.jit(fn)
    r = jnp.asarray(np.random.default_rng(1).standard_normal(fwd(*arrays).shape), jnp.float32)
    # r is an argument, not a closed-over constant: XLA would constant-fold the backward of r.
    fb = jax.jit(lambda r, *a: jax.value_and_grad(lambda *a: jnp.sum(fn(*a) * r))(*a))
    return (lambda: jax.block_until_ready(fwd(*arrays)),
            lambda: jax.block_until_ready(fb(r, *arrays)))


def _torch_fns(fn, arrays):
    import torch
    xs = [_to_torch(a, (0, 3, 1, 2) if i == 0 else (3, 2, 0, 1)) for i, a in enumerate(arrays)]
    xs = [xs[0].requires_grad_(True)] + xs[1:]
    with torch.no_grad():
        r = torch.randn_like(fn(*xs))

    def fwd():
        with torch.no_grad():
            fn(*xs)

    def fb():
        xs[0].grad = None
        (fn(*xs) * r).sum().backward()
    return fwd, fb


def _time(f, reps=1):
    """ms per call, averaged over `reps` back-to-back calls."""
    t = time.perf_counter()
    for _ in range(reps):
        f()
    return (time.perf_counter() - t) * 1e3 / reps


def _calibrate(f, min_ms):
    f()  # compile / warm up
    return max(1, int(min_ms / _time(f)))


def bench(case, rounds, tops, skip_old=False, min_ms=50.0):
    rng = np.random.default_rng(0)
    arrays = [jnp.asarray(rng.standard_normal(s).astype(np.float32)) for s in case.shapes]
    want = np.asarray(jax.jit(case.old)(*arrays))
    got = np.asarray(jax.jit(case.new)(*arrays))
    err = np.linalg.norm(got - want) / np.linalg.norm(want)
    fns = {"new": _jax_fns(case.new, arrays)}
    if not skip_old:
        fns["old"] = _jax_fns(case.old, arrays)
    if tops is not None and case.torch is not None:
        fns["torch"] = _torch_fns(case.torch, arrays)
    # Warm up (compile), then size each sample to >= ~min_ms so a short op is not timed once.
    reps = {(k, m): _calibrate(pair[m], min_ms) for k, pair in fns.items() for m in (0, 1)}
    times = {key: [] for key in reps}
    for _ in range(rounds):
        for k, pair in fns.items():
            for m in (0, 1):
                times[(k, m)].append(_time(pair[m], reps[(k, m)]))
    return {k: statistics.median(v) for k, v in times.items()}, err


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stylegan3-path", help="official NVlabs/stylegan3 checkout (torch impl='ref')")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--cap", type=int, default=128, help="channel cap (config F has 512)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--only", default="", help="substring filter on case names")
    p.add_argument("--skip-old", action="store_true", help="do not time the old formulation")
    args = p.parse_args()
    tops = None
    if args.stylegan3_path:
        import torch
        torch.set_num_threads(1)
        sys.path.insert(0, args.stylegan3_path)
        if "pkg_resources" not in sys.modules:  # conv2d_gradfix imports it; gone in new setuptools
            import types

            from packaging.version import parse
            sys.modules["pkg_resources"] = types.SimpleNamespace(parse_version=parse)
        import torch_utils.ops.conv2d_resample  # noqa: F401
        import torch_utils.ops.filtered_lrelu  # noqa: F401
        import torch_utils.ops.upfirdn2d  # noqa: F401
        from torch_utils import ops as tops
    cases = _sg2_cases(args.batch, args.cap, tops) + _sg3_cases(args.batch, args.cap, tops)
    print(f"backend {jax.default_backend()}, XLA_FLAGS={os.environ.get('XLA_FLAGS')}, "
          f"{args.rounds} interleaved rounds, median ms")
    print(f"{'case':52s} {'pass':4s} {'old':>8s} {'new':>8s} {'torch':>8s} "
          f"{'new/old':>8s} {'new/torch':>9s}  rel_l2")
    for case in cases:
        if args.only not in case.name:
            continue
        t, err = bench(case, args.rounds, tops, args.skip_old)
        for m, label in ((0, "fwd"), (1, "f+b")):
            tt = t.get(("torch", m), float("nan"))
            to = t.get(("old", m), float("nan"))
            print(f"{case.name:52s} {label:4s} {to:8.2f} {t[('new', m)]:8.2f} "
                  f"{tt:8.2f} {t[('new', m)] / to:8.3f} {t[('new', m)] / tt:9.3f}  "
                  f"{err:.1e}", flush=True)


if __name__ == "__main__":
    main()
