"""Train-step throughput of BigGAN-deep at 128 px (paper width, ch=128) on the current device.

    python benchmarks/biggan_step.py --batch=256          # GPU / TPU
    python benchmarks/biggan_step.py --batch=2 --steps=2  # CPU

Prints images/s (real images consumed: 2 D steps x batch per step), the compiled FLOP count of
one step (jit(...).lower().compile().cost_analysis()) and the MFU against PEAK_FLOPS.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

# Dense bf16 peak FLOP/s per device (vendor data sheets); float32 runs use the same table, so
# their MFU is a lower bound on the achievable fraction.
PEAK_FLOPS = {
    "TPU v3": 123e12, "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12,
    "TPU v5p": 459e12, "TPU v6 lite": 918e12, "TPU v6e": 918e12,
    "NVIDIA A100-SXM4-40GB": 312e12, "NVIDIA A100-SXM4-80GB": 312e12,
    "NVIDIA H100 80GB HBM3": 989e12, "NVIDIA H100": 989e12, "NVIDIA H200": 989e12,
    "cpu": 1e12,  # nominal; CPU MFU is not meaningful
}


def peak_flops(device) -> float:
    kind = device.device_kind
    for name, flops in PEAK_FLOPS.items():
        if kind.startswith(name) or name.lower() == kind.lower():
            return flops
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=0, help="global batch (default 2 on CPU, 64)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps after the compile")
    ap.add_argument("--dtype", default="bfloat16", help="compute dtype (float32 | bfloat16)")
    ap.add_argument("--preset", default="imagenet128")
    args = ap.parse_args()

    from configs import biggan_deep
    from gan_zoo import train
    from gan_zoo.train import sharding

    on_cpu = jax.default_backend() == "cpu"
    config = biggan_deep.get_config(args.preset)
    config.train.batch_size = args.batch or (2 if on_cpu else 64)
    config.model.dtype = "float32" if on_cpu else args.dtype
    mesh = sharding.make_mesh({"data": -1})
    recipe, abstract, shardings, init = train.build_state(config, mesh)
    in_sharding = sharding.batch_sharding(mesh)
    b, r = config.train.batch_size, config.model.resolution
    s = recipe.real_batches_per_step
    shapes = {"image": jax.ShapeDtypeStruct((s, 1, b, r, r, 3), "float32", sharding=in_sharding),
              "label": jax.ShapeDtypeStruct((s, 1, b), "int32", sharding=in_sharding)}
    step = train.make_train_step(recipe, 1, shardings, in_sharding)
    t0 = time.time()
    compiled = step.lower(abstract, shapes).compile()
    compile_s = time.time() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan")))

    state = init()
    batch = jax.tree.map(lambda a: jax.device_put(jax.numpy.zeros(a.shape, a.dtype),
                                                  a.sharding), shapes)
    state, metrics = compiled(state, batch)  # warm-up
    jax.block_until_ready(metrics)
    t0 = time.time()
    for _ in range(args.steps):
        state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    dt = (time.time() - t0) / args.steps
    n_dev = mesh.devices.size
    peak = peak_flops(jax.devices()[0]) * n_dev
    print(f"device: {jax.devices()[0].device_kind} x{n_dev}  batch {b}  dtype "
          f"{config.model.dtype}  compile {compile_s:.1f} s")
    print(f"step: {dt * 1e3:.1f} ms  images/s: {s * b / dt:.1f}  TFLOP/step: {flops / 1e12:.3f}  "
          f"TFLOP/s: {flops / dt / 1e12:.2f}  MFU: {flops / dt / peak:.1%}")


if __name__ == "__main__":
    main()
