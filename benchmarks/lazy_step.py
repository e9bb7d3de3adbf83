"""Cost of a skipped lazy phase: StyleGAN2 `photos` preset train steps (batch 8, 32^2, tiny G/D),
R1 every 16 steps and path length every 4, timed on steps where both are skipped, where PL runs,
where both run, against the same recipe without lazy phases (what a skipped phase should cost).

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
        taskset -c 0 python benchmarks/lazy_step.py [--rounds 5]

Prints median ms per step and the ratio to the no-lazy step. Rounds are interleaved.
"""

import argparse
import dataclasses
import time

import jax
import numpy as np

from configs import stylegan2 as sg2_config
from gan_zoo import data as gdata
from gan_zoo import train
from gan_zoo.train import sharding


def _setup():
    config = sg2_config.get_config("photos")
    mesh = sharding.make_mesh({"data": 1})
    recipe, _, shardings, init = train.build_state(config, mesh)
    t = config.train
    layout = gdata.Layout(recipe.real_batches_per_step, t.grad_accum, t.batch_size)
    batch = next(gdata.make_source(config.data, config.model.resolution, 0).batches(layout))
    in_sh = sharding.batch_sharding(mesh)
    plain = dataclasses.replace(recipe, phases=tuple(p for p in recipe.phases if p.every == 1))
    fns = {name: jax.jit(lambda s, b, r=r: train.train_step(r, t.grad_accum, s, b))
           for name, r in (("lazy", recipe), ("plain", plain))}
    return fns, init(), jax.device_put(batch, in_sh)


def _time(fn, state, batch, reps):
    t = time.perf_counter()
    for _ in range(reps):
        jax.block_until_ready(fn(state, batch))
    return (time.perf_counter() - t) / reps


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    fns, state, batch = _setup()
    cases = {"no lazy phases": (fns["plain"], 1), "lazy, both skipped (step 1)": (fns["lazy"], 1),
             "lazy, PL runs (step 4)": (fns["lazy"], 4),
             "lazy, PL + R1 run (step 0)": (fns["lazy"], 0)}
    states = {k: state.replace(step=jax.numpy.int32(s)) for k, (_, s) in cases.items()}
    for k, (fn, _) in cases.items():
        jax.block_until_ready(fn(states[k], batch))  # compile
    times = {k: [] for k in cases}
    for _ in range(a.rounds):
        for k, (fn, _) in cases.items():
            times[k].append(_time(fn, states[k], batch, a.reps))
    base = np.median(times["no lazy phases"])
    for k, v in times.items():
        print(f"{k:32s} {np.median(v) * 1e3:8.1f} ms  x{np.median(v) / base:.2f}")


if __name__ == "__main__":
    main()
