"""data.loader='grain' vs 'native' throughput on the two random-access sources (host side).

A folder of N random-noise PNGs at R^2 (data.path) and the built-in `digits`; rounds interleave
the loaders so a shared, loaded machine biases neither. Prints images/s per round and the ratio.
    python benchmarks/grain_loader.py [--n=96] [--res=256] [--batch=32] [--steps=6] [--rounds=3]
"""

import argparse
import os
import tempfile
import time

import numpy as np
from ml_collections import ConfigDict
from PIL import Image

from gan_zoo.data import Layout, make_source


def _folder(n: int, res: int) -> str:
    root = tempfile.mkdtemp(prefix="grain_bench_")
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (res, res, 3), np.uint8)).save(
            os.path.join(root, f"{i:05d}.png"))
    return root


def _rate(cfg, res: int, batch: int, steps: int) -> float:
    it = make_source(cfg, res, seed=0).batches(Layout(1, 1, batch))
    next(it)  # start-up (threads, first decode) not timed
    t0 = time.perf_counter()
    for _ in range(steps):
        next(it)
    return steps * batch / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser()
    for name, default in (("n", 96), ("res", 256), ("batch", 32), ("steps", 6), ("rounds", 3)):
        p.add_argument(f"--{name}", type=int, default=default)
    a = p.parse_args()
    path = _folder(a.n, a.res)
    cases = {"data.path": (dict(path=path), a.res), "digits": (dict(name="digits"), 32)}
    for case, (kw, res) in cases.items():
        for r in range(a.rounds):
            rates = {}
            for loader in (("native", "grain") if r % 2 == 0 else ("grain", "native")):
                cfg = ConfigDict({"name": "", "path": "", "flip": True, "loader": loader,
                                  "max_bad_records": 0.001, **kw})
                rates[loader] = _rate(cfg, res, a.batch, a.steps)
            ratio = rates["grain"] / rates["native"]
            print(f"{case} round {r}: native {rates['native']:.0f} img/s, grain "
                  f"{rates['grain']:.0f} img/s, grain/native {ratio:.2f}")


if __name__ == "__main__":
    main()
