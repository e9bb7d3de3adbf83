"""Fused (grouped) vs unfused modulated conv, forward, at StyleGAN2 config-F / StyleGAN3-T layer
shapes: the measurement behind `gan_zoo.ops.modulated_conv2d.FUSED_RULES`.

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
        taskset -c 0 python benchmarks/modconv_fused.py [--rounds 5] [--quick]

Prints one row per (op, resolution, channels, batch): median ms fused, unfused, and the ratio
fused / unfused (< 1: fused is faster). Rounds are interleaved (fused, unfused, fused, ...).
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo import ops

# (res, channels) of config-F 3x3 convs (channel_base 32768, channel_max 512) and StyleGAN3-T
# layer input sizes (sampling-rate-padded sides) with their channels.
SG2_SHAPES = [(4, 512), (8, 512), (16, 512), (32, 512), (64, 512), (128, 256), (256, 128)]
SG3_SHAPES = [(36, 512), (36, 256), (52, 256), (84, 128), (148, 64)]


def _fns(op: str, n: int, res: int, c: int, up: int):
    key = jax.random.PRNGKey(0)
    kx, kw, ks = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n, res, res, c), jnp.float32)
    w = jax.random.normal(kw, (3, 3, c, c), jnp.float32)
    s = jax.random.normal(ks, (n, c), jnp.float32) + 1.0
    if op == "sg2":
        f = ops.setup_filter([1, 3, 3, 1])
        mk = lambda fused: jax.jit(lambda x, w, s: ops.modulated_conv2d(  # noqa: E731
            x, w, s, up=up, padding=1, resample_filter=f, flip_weight=up == 1,
            fused_modconv=fused))
    else:
        mk = lambda fused: jax.jit(lambda x, w, s: ops.modulated_conv2d_sg3(  # noqa: E731
            x, w, s, padding=2, fused_modconv=fused))
    return (x, w, s), mk(True), mk(False)


def _time(fn, args, reps: int) -> float:
    t = time.perf_counter()
    for _ in range(reps):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - t) / reps


def measure(op, res, c, n, up, rounds):
    args, fused, unfused = _fns(op, n, res, c, up)
    jax.block_until_ready(fused(*args))
    jax.block_until_ready(unfused(*args))
    reps = max(1, int(0.2 / max(_time(unfused, args, 1), 1e-4)))
    tf, tu = [], []
    for _ in range(rounds):
        tf.append(_time(fused, args, reps))
        tu.append(_time(unfused, args, reps))
    return np.median(tf) * 1e3, np.median(tu) * 1e3


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--max_flop", type=float, default=2e10, help="skip bigger single calls")
    p.add_argument("--batches", default="1,2,4,8", help="comma-separated batch sizes N")
    p.add_argument("--ops", default="sg2,sg3", help="comma-separated: sg2, sg3")
    a = p.parse_args()
    print(f"backend {jax.default_backend()}, {jax.devices()[0].device_kind}")
    print("op  up  res  ch  N  fused_ms  unfused_ms  fused/unfused")
    cases = [("sg2", 1, r, c) for r, c in SG2_SHAPES] + [("sg2", 2, r, c) for r, c in
                                                         SG2_SHAPES[:5]]
    cases += [("sg3", 1, r, c) for r, c in SG3_SHAPES]
    for op, up, res, c in [case for case in cases if case[0] in a.ops.split(",")]:
        for n in map(int, a.batches.split(",")):
            flop = 2 * 9 * n * (res * up) ** 2 * c * c
            if flop > a.max_flop:
                continue
            f, u = measure(op, res, c, n, up, a.rounds)
            print(f"{op} {up} {res:4d} {c:4d} {n} {f:9.2f} {u:9.2f} {f / u:6.2f}", flush=True)


if __name__ == "__main__":
    main()
