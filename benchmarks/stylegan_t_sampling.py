"""StyleGAN-T sampling speed: images/s and latency of the generator, text encoder timed apart.

    python benchmarks/stylegan_t_sampling.py                              # lite 64^2, batch 1, 16
    python benchmarks/stylegan_t_sampling.py --variants lite,full --batches 1,56   # on a GPU
    python benchmarks/stylegan_t_sampling.py --variants micro --text _test --rounds 2  # smoke run

Paper reference (StyleGAN-T Fig. 1, Table 2/3; spec stylegan_xl_and_t.md §2.7): 10 FPS at 512^2
on one A100 (0.1 s per sample), 0.06 s per 64^2 sample, 56 samples at 512^2 in 6 s on an RTX 3090.

Each timed call is ONE jitted G(z, c, psi) (mapping + synthesis, noise_mode='const' so no rng
enters) on random weights from the Flax init, the batch sharded over a 'data' mesh of all
devices, weights replicated; the text encoder (CLIP ViT-L/14 text tower, 77 tokens, random
weights) is a separate jitted call, since a prompt's embedding is computed once and reused for
any number of z. After one warm-up call (compile), `--rounds` calls are timed with
block_until_ready; the median is reported. Latency = the median time of a batch-1 call.
--cost_only reports a variant's XLA FLOP count per image and weight bytes without running it
(the CPU fallback for `full` at 512^2).
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

from gan_zoo.feature_nets import clip  # noqa: E402
from gan_zoo.models import stylegan_t  # noqa: E402


def _mesh_for(batch: int) -> Mesh:
    """A 'data' mesh over as many devices as divide the batch (batch 1: one device)."""
    devices = jax.devices()
    n = max(d for d in range(1, len(devices) + 1) if batch % d == 0)
    return Mesh(np.asarray(devices[:n]), ("data",))


def _timed(fn, args, rounds: int) -> float:
    """Median seconds of fn(*args) over `rounds` calls after one warm-up (compile) call."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def generator_fn(G, psi: float, fused=None):
    """jit(variables, z, c) -> images [N, R, R, 3]: mapping + synthesis, constant noise.
    fused: the modulated convs as one grouped conv per layer (None: the model default, True)."""
    def sample(variables, z, c):
        img, _ = G.apply(variables, z, c, psi=psi, noise_mode="const", fused_modconv=fused)
        return img
    return jax.jit(sample)


def _gen_inputs(G, batch: int, mesh: Mesh):
    """(z, c) on the mesh: c an L2-normalised random text embedding, as the text encoder gives."""
    shard = NamedSharding(mesh, PartitionSpec("data"))
    z = jax.random.normal(jax.random.PRNGKey(1), (batch, G.z_dim))
    c = clip.l2_normalize(jax.random.normal(jax.random.PRNGKey(2), (batch, G.c_dim)))
    return jax.device_put(z, shard), jax.device_put(c, shard)


def bench_generator(variant: str, batches, rounds: int, psi: float, fused=None) -> list:
    """[(batch, seconds per call)] for G of `variant`."""
    G = stylegan_t.generator(variant)
    z1, c1 = jnp.zeros((1, G.z_dim)), jnp.zeros((1, G.c_dim))
    variables = jax.jit(G.init)(jax.random.PRNGKey(0), z1, c1)
    n_params = sum(x.size for x in jax.tree.leaves(variables["params"]))
    print(f"{variant}: {G.img_resolution}^2, {n_params / 1e6:.1f}M G parameters")
    fn, out = generator_fn(G, psi, fused), []
    for batch in batches:
        mesh = _mesh_for(batch)
        params = jax.device_put(variables, NamedSharding(mesh, PartitionSpec()))
        sec = _timed(fn, (params, *_gen_inputs(G, batch, mesh)), rounds)
        out.append((batch, sec))
        print(f"  G batch {batch:4d} on {mesh.size} device(s): {sec * 1e3:9.1f} ms/call  "
              f"{batch / sec:9.2f} img/s  {sec / batch * 1e3:9.1f} ms/img")
    return out


def bench_text(variant: str, batches, rounds: int) -> list:
    """[(prompts, seconds per call)] of the CLIP text tower (random weights, full context)."""
    tower = clip.make(variant).text
    tokens1 = jnp.zeros((1, tower.context_length), jnp.int32)
    variables = jax.jit(tower.init)(jax.random.PRNGKey(0), tokens1)
    n_params = sum(x.size for x in jax.tree.leaves(variables["params"]))
    print(f"text encoder {variant}: {n_params / 1e6:.1f}M parameters, "
          f"{tower.context_length} tokens")
    fn = jax.jit(lambda v, t: clip.l2_normalize(tower.apply(v, t)[0]))
    out = []
    for batch in batches:
        mesh = _mesh_for(batch)
        params = jax.device_put(variables, NamedSharding(mesh, PartitionSpec()))
        ids = np.random.default_rng(0).integers(1, tower.vocab_size - 1,
                                                (batch, tower.context_length))
        ids[:, -1] = tower.vocab_size - 1  # the end token (largest id) is pooled
        tokens = jax.device_put(jnp.asarray(ids, jnp.int32),
                                NamedSharding(mesh, PartitionSpec("data")))
        sec = _timed(fn, (params, tokens), rounds)
        out.append((batch, sec))
        print(f"  text batch {batch:4d}: {sec * 1e3:9.1f} ms/call  {batch / sec:9.2f} prompts/s")
    return out


def cost_only(variant: str, psi: float) -> dict:
    """XLA's FLOP count of one batch-1 sample and the weight bytes, nothing allocated or run."""
    G = stylegan_t.generator(variant)
    z, c = jax.ShapeDtypeStruct((1, G.z_dim), jnp.float32), jax.ShapeDtypeStruct(
        (1, G.c_dim), jnp.float32)
    variables = jax.eval_shape(G.init, jax.random.PRNGKey(0), z, c)
    weight_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(variables))
    cost = generator_fn(G, psi).lower(variables, z, c).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan")))
    print(f"{variant}: {G.img_resolution}^2, weights {weight_bytes / 2**30:.2f} GiB (float32), "
          f"{flops / 1e9:.0f} GFLOP per image (XLA cost analysis, batch 1); not run")
    return {"flops": flops, "weight_bytes": weight_bytes}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", default="lite", help="stylegan_t.VARIANTS names, comma-separated")
    p.add_argument("--batches", default="1,16", help="batch sizes, comma-separated")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--psi", type=float, default=1.0, help="truncation psi of the z part")
    p.add_argument("--text", default="ViT-L-14", help="clip.VARIANTS name; '' skips the text "
                   "encoder")
    p.add_argument("--cost_only", default="", help="variants to report FLOPs/bytes for, unrun")
    p.add_argument("--fused_modconv", default="auto", choices=("auto", "true", "false"),
                   help="auto: the model default (fused = grouped conv; on XLA CPU a grouped conv "
                   "over a batch > 1 was ~100x slower per image than batch 1)")
    args = p.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",") if b]
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()} "
          f"({jax.default_backend()}), jax {jax.__version__}")
    results = {}
    for variant in [v for v in args.variants.split(",") if v]:
        fused = {"auto": None, "true": True, "false": False}[args.fused_modconv]
        results[variant] = bench_generator(variant, batches, args.rounds, args.psi, fused)
    for variant in [v for v in args.cost_only.split(",") if v]:
        results[f"{variant}:cost"] = cost_only(variant, args.psi)
    if args.text:
        results["text"] = bench_text(args.text, batches, args.rounds)
    return results


if __name__ == "__main__":
    main()
