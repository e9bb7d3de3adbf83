"""Pallas kernels vs the XLA reference ops at StyleGAN2 config-F and StyleGAN3-T layer shapes.

    python benchmarks/kernels.py --batch 4 --res 256 1024          # on a GPU/TPU
    python benchmarks/kernels.py --quick                            # CPU smoke run (interpret mode)
    python benchmarks/kernels.py --torch --stylegan3-path ~/stylegan3   # + official CUDA ops

For every layer it times forward and forward+backward (grad of sum(out * R) w.r.t. every
differentiable input) of the Pallas path and of the XLA path (jit, warm-up, block_until_ready,
median of --reps), and prints their ratio (XLA time / Pallas time: > 1 means the kernel is
faster). With --torch it also times the official PyTorch CUDA ops (NCHW) of the stylegan3 repo.
"""

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from gan_zoo import ops  # noqa: E402
from kernels_pallas import filtered_lrelu, modulated_conv2d, upfirdn2d  # noqa: E402


@dataclasses.dataclass
class Layer:
    name: str  # "<family>@<res>/<layer>"
    op: str  # upfirdn2d | filtered_lrelu | modulated_conv2d
    shapes: dict  # input name -> shape (NHWC / HWIO); the differentiable inputs
    consts: dict  # filters etc. (numpy)
    kwargs: dict  # static arguments of the op


def _sg2_channels(res, cap):
    return min(32768 // res, 512, cap)  # config F: channel_base 32768, channel_max 512


def sg2_layers(res, batch, cap):
    """StyleGAN2 config F, the block at `res`: 3x3 up-conv, 3x3 conv (+noise), ToRGB, skip up."""
    c_in, c = _sg2_channels(res // 2, cap), _sg2_channels(res, cap)
    f = ops.setup_filter([1, 3, 3, 1])
    h = res // 2
    pre = f"sg2f@{res}/"
    return [
        Layer(pre + "modconv3x3_up2", "modulated_conv2d",
              {"x": (batch, h, h, c_in), "weight": (3, 3, c_in, c), "styles": (batch, c_in)},
              {"resample_filter": f}, dict(up=2, padding=1, flip_weight=False)),
        Layer(pre + "modconv3x3", "modulated_conv2d",
              {"x": (batch, res, res, c), "weight": (3, 3, c, c), "styles": (batch, c)},
              {}, dict(padding=1)),
        Layer(pre + "torgb1x1", "modulated_conv2d",
              {"x": (batch, res, res, c), "weight": (1, 1, c, 3), "styles": (batch, c)},
              {}, dict(demodulate=False)),
        Layer(pre + "upsample2d_skip", "upfirdn2d", {"x": (batch, h, h, 3)}, {"f": f},
              dict(up=2, padding=[2, 1, 2, 1], gain=4)),
    ]


def _sg3_padding(in_size, out_size, up, down, up_taps, down_taps, conv_kernel=3):
    """Official SynthesisLayer padding (StyleGAN3 App. D.1): [x0, x1, y0, y1]."""
    total = (out_size - 1) * down + 1 - (in_size + conv_kernel - 1) * up + up_taps + down_taps - 2
    lo = (total + up) // 2
    return [lo, total - lo, lo, total - lo]


def sg3_layers(res, batch, cap):
    """StyleGAN3-T at `res`: the last layers' filtered_lrelu geometries, ToRGB and a 3x3 modconv.

    Sizes carry the 10-pixel margin (res + 20) except the critically sampled output layer;
    channels = min(channel_base/2 / cutoff, 512) with the output cutoff res/2.
    """
    c = min(16384 // (res // 2), 512, cap)
    k12 = ops.design_lowpass_filter(12, cutoff=res / 4, width=res / 4, fs=2 * res)
    k24 = ops.design_lowpass_filter(24, cutoff=res / 4, width=res / 2, fs=4 * res)
    big, small = res + 20, res // 2 + 20
    pre = f"sg3t@{res}/"

    def flrelu(name, n_in, n_out, up, fu, fd, ch=c, **kw):
        ut, dt = (1 if fu is None else fu.size), (1 if fd is None else fd.size)
        pad = _sg3_padding(n_in, n_out, up, 2 if fd is not None else 1, ut, dt)
        kw = dict(up=up, down=2 if fd is not None else 1, padding=pad, clamp=256.0, **kw)
        return Layer(pre + name, "filtered_lrelu", {"x": (batch, n_in + 2, n_in + 2, ch),
                                                    "b": (ch,)}, {"fu": fu, "fd": fd}, kw)
    return [
        flrelu("flrelu_up2_down2", big, big, 2, k12, k12),
        flrelu("flrelu_up4_down2", small, big, 4, k24, k12),
        flrelu("flrelu_critical", big, res, 2, k12, k12),
        Layer(pre + "torgb_flrelu", "filtered_lrelu", {"x": (batch, res, res, 3), "b": (3,)},
              {"fu": None, "fd": None}, dict(gain=1.0, slope=1.0, clamp=256.0)),
        Layer(pre + "modconv3x3", "modulated_conv2d",
              {"x": (batch, big, big, c), "weight": (3, 3, c, c), "styles": (batch, c)},
              {}, dict(padding=1)),
    ]


# -------------------------------------------------------------------------------------------------
# JAX timing.


def _fn(layer, impl):
    """f(**inputs) of the layer on 'pallas' (the kernel) or 'xla' (the reference)."""
    c, kw = layer.consts, layer.kwargs
    if layer.op == "upfirdn2d":
        k = upfirdn2d.upfirdn2d if impl == "pallas" else (
            lambda *a, **k: ops.upfirdn2d(*a, impl="xla", **k))
        return lambda x: k(x, c["f"], **kw)
    if layer.op == "filtered_lrelu":
        k = filtered_lrelu.filtered_lrelu if impl == "pallas" else (
            lambda *a, **k: ops.filtered_lrelu(*a, impl="xla", **k))
        return lambda x, b: k(x, c["fu"], c["fd"], b, **kw)
    k = modulated_conv2d.modulated_conv2d if impl == "pallas" else (
        lambda *a, **k: ops.modulated_conv2d(*a, impl="xla", **k))
    return lambda x, weight, styles: k(x, weight, styles, resample_filter=c.get("resample_filter"),
                                       **kw)


def _median_time(fn, args, reps, warmup):
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_jax(layer, impl, reps, warmup, dtype):
    rng = np.random.default_rng(0)
    names = list(layer.shapes)
    args = [jnp.asarray(rng.standard_normal(layer.shapes[n]), dtype) for n in names]
    fn = _fn(layer, impl)
    out = jax.eval_shape(lambda *a: fn(**dict(zip(names, a))), *args)
    r = jnp.asarray(rng.standard_normal(out.shape), out.dtype)
    fwd = jax.jit(lambda *a: fn(**dict(zip(names, a))))
    loss = lambda *a: jnp.sum((fn(**dict(zip(names, a))) * r).astype(jnp.float32))
    bwd = jax.jit(jax.value_and_grad(loss, argnums=tuple(range(len(args)))))
    return _median_time(fwd, args, reps, warmup), _median_time(bwd, args, reps, warmup)


# -------------------------------------------------------------------------------------------------
# Official CUDA ops through PyTorch (optional).


def time_torch(layer, path, reps, warmup):
    """Forward and forward+backward of the official op (NCHW), or None if unavailable."""
    try:
        import torch
        sys.path.insert(0, path)
        from torch_utils.ops import filtered_lrelu as t_flrelu
        from torch_utils.ops import upfirdn2d as t_upfirdn2d
        from training import networks_stylegan2 as t_sg2
    except ImportError as e:
        print(f"--torch: skipped ({e})", file=sys.stderr)
        return None
    if not torch.cuda.is_available():
        return None
    dev = torch.device("cuda")
    nchw = lambda s: (s[0], s[3], s[1], s[2]) if len(s) == 4 else s
    oihw = lambda s: (s[3], s[2], s[0], s[1])
    shapes = {k: (oihw(s) if k == "weight" else nchw(s)) for k, s in layer.shapes.items()}
    args = {k: torch.randn(s, device=dev, requires_grad=True) for k, s in shapes.items()}
    consts = {k: None if v is None else torch.as_tensor(np.asarray(v), device=dev)
              for k, v in layer.consts.items()}
    kw = dict(layer.kwargs)
    if layer.op == "upfirdn2d":
        fn = lambda: t_upfirdn2d.upfirdn2d(args["x"], consts["f"], impl="cuda", **kw)
    elif layer.op == "filtered_lrelu":
        fn = lambda: t_flrelu.filtered_lrelu(args["x"], consts["fu"], consts["fd"], args["b"],
                                             impl="cuda", **kw)
    else:
        fn = lambda: t_sg2.modulated_conv2d(args["x"], args["weight"], args["styles"],
                                            resample_filter=consts.get("resample_filter"), **kw)

    def step(backward):
        y = fn()
        if backward:
            y.sum().backward()
        torch.cuda.synchronize()

    out = []
    for backward in (False, True):
        for _ in range(warmup):
            step(backward)
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            step(backward)
            ts.append(time.perf_counter() - t0)
        out.append(statistics.median(ts))
    return tuple(out)


# -------------------------------------------------------------------------------------------------
# Main.


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=4, help="batch size")
    p.add_argument("--res", type=int, nargs="+", default=[256, 1024], help="resolutions")
    p.add_argument("--family", nargs="+", default=["sg2f", "sg3t"], choices=["sg2f", "sg3t"])
    p.add_argument("--only", default="", help="substring filter on layer names")
    p.add_argument("--reps", type=int, default=10, help="timed repetitions (median reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--max-channels", type=int, default=512, help="cap channel counts")
    p.add_argument("--quick", action="store_true",
                   help="CPU smoke run: res 32, batch 1, <= 8 channels, 2 reps")
    p.add_argument("--torch", action="store_true", help="also time the official CUDA ops")
    p.add_argument("--stylegan3-path", default=os.environ.get("STYLEGAN3_PATH", ""),
                   help="checkout of NVlabs/stylegan3 (for --torch)")
    p.add_argument("--json", default="", help="also write the results to this file")
    a = p.parse_args(argv)
    if a.quick:
        a.res, a.batch, a.max_channels, a.reps, a.warmup = [32], 1, 8, 2, 1

    builders = {"sg2f": sg2_layers, "sg3t": sg3_layers}
    layers = [layer for fam in a.family for r in a.res
              for layer in builders[fam](r, a.batch, a.max_channels) if a.only in layer.name]
    dev = jax.devices()[0]
    print(f"# device: {dev.platform} {dev.device_kind} | jax {jax.__version__} | batch {a.batch} "
          f"| {a.dtype} | median of {a.reps} | pallas interpret={jax.default_backend() == 'cpu'}")
    cols = "| layer | pallas fwd ms | xla fwd ms | fwd xla/pallas | pallas f+b ms | xla f+b ms " \
           "| f+b xla/pallas |" + (" torch fwd ms | torch f+b ms |" if a.torch else "")
    print(cols)
    print("|" + "---|" * (cols.count("|") - 1))
    rows = []
    for layer in layers:
        dtype = jnp.dtype(a.dtype)
        pf, pb = time_jax(layer, "pallas", a.reps, a.warmup, dtype)
        xf, xb = time_jax(layer, "xla", a.reps, a.warmup, dtype)
        row = dict(layer=layer.name, pallas_fwd=pf, xla_fwd=xf, pallas_fb=pb, xla_fb=xb)
        line = (f"| {layer.name} | {pf * 1e3:.2f} | {xf * 1e3:.2f} | {xf / pf:.2f} | "
                f"{pb * 1e3:.2f} | {xb * 1e3:.2f} | {xb / pb:.2f} |")
        if a.torch:
            t = time_torch(layer, a.stylegan3_path, a.reps, a.warmup)
            row["torch"] = t
            line += " n/a | n/a |" if t is None else f" {t[0] * 1e3:.2f} | {t[1] * 1e3:.2f} |"
        print(line, flush=True)
        rows.append(row)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(dict(device=f"{dev.platform} {dev.device_kind}", args=vars(a), rows=rows),
                      fh, indent=1)


if __name__ == "__main__":
    main()
