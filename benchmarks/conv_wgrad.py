"""Where XLA:CPU loses to PyTorch in a conv layer's backward: the weight gradient (issue #20).

    python benchmarks/conv_wgrad.py [--rounds 5] [--shapes 8x64x128x128x3x1,8x66x128x128x3x2]

One thread on both sides (XLA flags and torch.set_num_threads(1)), CPU time of the calling process
(`time.process_time`: robust to other jobs on a shared box), median of interleaved rounds. Prints,
per conv shape NxHxCxOxKxS (input [N, H, H, C], kernel K x K, stride S, 'same' padding for S=1),
the weight gradient dL/dw in ms as
- `taps/ynn`: gan_zoo's formulation (`ops.conv2d_resample._conv_bwd`: one g^T x matmul per tap),
  XLA:CPU defaults (YNNPACK);
- `native/ynn`: XLA's own transpose of the conv (what `jax.grad` of `lax.conv` emits), defaults;
- `native/eigen`: the same, YNNPACK off for this jit (`xla_cpu_experimental_ynn_fusion_type=""`);
- `torch`: `torch.nn.grad.conv2d_weight` (oneDNN);
then the forward conv and the input gradient for scale, and the matmul throughput of XLA:CPU vs
torch (MKL) at the GEMM shapes the weight gradient reduces to. torch is needed (benchmarks only).
"""

import argparse
import importlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

_CR = importlib.import_module("gan_zoo.ops.conv2d_resample")  # the module, not the function
DN = ("NHWC", "HWIO", "NHWC")
EIGEN = {"xla_cpu_experimental_ynn_fusion_type": ""}
GEMMS = ((128, 32768, 128), (1152, 32768, 128), (32768, 1152, 128), (32768, 128, 128),
         (512, 8192, 512))  # (M, K, N); the first: one tap of a 64^2 batch-8 128->128 conv


def conv(x, w, s, p):
    return jax.lax.conv_general_dilated(x, w, (s, s), ((p, p), (p, p)), dimension_numbers=DN)


def wgrad_native(x, g, w, s, p):
    return jax.vjp(lambda w_: conv(x, w_, s, p), w)[1](g)[0]


def wgrad_taps(x, g, w, s, p):
    return _CR._conv_bwd(s, ((p, p), (p, p)), (x, w), g)[1]


def timed(fns: dict, rounds: int) -> dict:
    res = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.process_time()
            f()
            res[k].append(time.process_time() - t0)
    return {k: float(np.median(v)) for k, v in res.items()}


def conv_row(shape: str, rounds: int) -> None:
    import torch  # noqa: PLC0415
    n, h, c, o, k, s = (int(v) for v in shape.split("x"))
    p = (k - 1) // 2 if s == 1 else 0
    rng = np.random.RandomState(0)
    x = rng.randn(n, h, h, c).astype(np.float32)
    w = (rng.randn(k, k, c, o) * 0.05).astype(np.float32)
    g = rng.randn(*conv(x, w, s, p).shape).astype(np.float32)
    jit = lambda f, opts=None: jax.jit(lambda x, g, w: f(x, g, w, s, p), compiler_options=opts)
    variants = {"taps/ynn": jit(wgrad_taps), "native/ynn": jit(wgrad_native),
                "native/eigen": jit(wgrad_native, EIGEN)}
    ref = np.asarray(variants["native/eigen"](x, g, w))
    for name, f in variants.items():  # equal outputs first
        err = float(np.abs(np.asarray(f(x, g, w)) - ref).max() / np.abs(ref).max())
        assert err < 1e-4, (name, err)
    fwd = jax.jit(lambda x, w: conv(x, w, s, p))
    dx = jax.jit(lambda x, g, w: jax.vjp(lambda x_: conv(x_, w, s, p), x)[1](g)[0])
    torch.set_num_threads(1)
    xt, gt = (torch.tensor(a).permute(0, 3, 1, 2).contiguous() for a in (x, g))
    fns = {k: (lambda f=f: jax.block_until_ready(f(x, g, w))) for k, f in variants.items()}
    fns["torch"] = lambda: torch.nn.grad.conv2d_weight(xt, (o, c, k, k), gt, stride=s, padding=p)
    fns["fwd/ynn"] = lambda: jax.block_until_ready(fwd(x, w))
    fns["dx/ynn"] = lambda: jax.block_until_ready(dx(x, g, w))
    for f in fns.values():
        f()
    t = timed(fns, rounds)
    print(f"{shape:22s} " + "  ".join(f"{k} {1e3 * v:7.1f}" for k, v in t.items()) +
          f"   taps/torch {t['taps/ynn'] / t['torch']:.2f}", flush=True)


def gemm_rows(rounds: int) -> None:
    import torch  # noqa: PLC0415
    mm = jax.jit(jnp.matmul)
    for m, k, n in GEMMS:
        a = np.random.RandomState(0).randn(m, k).astype(np.float32)
        b = np.random.RandomState(1).randn(k, n).astype(np.float32)
        at, bt = torch.tensor(a), torch.tensor(b)
        fns = {"xla": lambda: jax.block_until_ready(mm(a, b)), "torch": lambda: at @ bt}
        for f in fns.values():
            f()
        t = timed(fns, rounds)
        flop = 2.0 * m * k * n
        print(f"GEMM M,K,N={m},{k},{n}: xla {flop / t['xla'] / 1e9:6.1f} GFLOP/s, "
              f"torch {flop / t['torch'] / 1e9:6.1f} GFLOP/s", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--shapes", default="8x64x128x128x3x1,8x66x128x128x3x2,8x32x128x128x3x1")
    ap.add_argument("--no_gemm", action="store_true")
    a = ap.parse_args()
    print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}; ms of CPU time, "
          f"median of {a.rounds} interleaved rounds, 1 thread")
    for shape in a.shapes.split(","):
        conv_row(shape, a.rounds)
    if not a.no_gemm:
        gemm_rows(a.rounds)


if __name__ == "__main__":
    main()
