"""Images (or prompts) per second of the paper-size feature networks, JAX vs timm / open_clip.

    python benchmarks/feature_nets.py                          # all nets, --batch 2 (CPU)
    python benchmarks/feature_nets.py --batch 64 --rounds 5    # on a GPU/TPU
    python benchmarks/feature_nets.py --nets effnet_lite0,dino_vits16 --tiny   # smoke run

Every network runs as ONE jitted call (random weights from its Flax init; the batch sharded over
a 'data' mesh of all devices, the weights replicated), timed after a warm-up call with
block_until_ready. Where torch and timm / open_clip are importable (never a dependency of
gan_zoo), the same architecture runs in torch eval mode under no_grad on the same machine, and
each round times both back to back (interleaved), so the printed ratio (ours / theirs, > 1 means
JAX is faster) comes from one run. --tiny swaps in the tiny test configurations (no torch).
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

from gan_zoo.feature_nets import clip, efficientnet, vit  # noqa: E402

# name -> (what, timm / open_clip model name of the same architecture)
NETS = {
    "deit_base": ("DeiT-base distilled (SG-XL D)", "timm:deit_base_distilled_patch16_224"),
    "deit_small": ("DeiT-small distilled (SG-XL guidance)",
                   "timm:deit_small_distilled_patch16_224"),
    "dino_vits16": ("DINO ViT-S/16 (SG-T D)", "timm:vit_small_patch16_224.dino"),
    "clip_l14_image": ("CLIP ViT-L/14 image tower (SG-T)", "open_clip:ViT-L-14-quickgelu:image"),
    "effnet_lite0": ("EfficientNet-lite0 features (SG-XL D)", "timm:tf_efficientnet_lite0"),
    "clip_l14_text": ("CLIP ViT-L/14 text tower (SG-T)", "open_clip:ViT-L-14-quickgelu:text"),
}


def _module(name: str, tiny: bool):
    """(flax module, apply(variables, x), example input of one sample)."""
    side = 32 if tiny else 224
    image = np.zeros((1, side, side, 3), np.float32)
    if name.startswith("clip"):  # one tower alone (= CLIP.encode_text / encode_image)
        full = clip.make("_test" if tiny else "ViT-L-14")
        if name.endswith("text"):
            model = full.text
            tokens = np.zeros((1, model.context_length), np.int32)
            return model, lambda v, t: model.apply(v, t)[0], tokens, (tokens,)
        model = full.visual
        return model, lambda v, x: model.apply(v, x)[0], image, (image,)
    if name == "effnet_lite0":
        model = efficientnet.EfficientNetLite0()
        return model, lambda v, x: model.apply(v, x)[0], image, (image,)
    variant = {"deit_base": "deit_base_distilled_patch16_224",
               "deit_small": "deit_small_distilled_patch16_224",
               "dino_vits16": "vit_small_patch16_224.dino"}[name]
    model = vit.make("_test") if tiny else vit.make(variant)
    return model, lambda v, x: model.apply(v, x)[0], image, (image,)


def build_jax(name: str, batch: int, mesh: Mesh, tiny: bool = False):
    """(jitted fn, variables, sharded batch): one call = the whole net on `batch` inputs."""
    model, fn, example, init_args = _module(name, tiny)
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), *init_args)
    replicated = NamedSharding(mesh, PartitionSpec())
    sharded = NamedSharding(mesh, PartitionSpec("data"))
    rng = np.random.default_rng(0)
    if example.dtype == np.int32:  # prompts: random ids, the end token (largest id) last
        eot = model.vocab_size - 1
        x = rng.integers(1, eot - 1, (batch,) + example.shape[1:]).astype(np.int32)
        x[:, -1] = eot
    else:
        x = rng.uniform(-1, 1, (batch,) + example.shape[1:]).astype(np.float32)
    variables = jax.device_put(variables, replicated)
    jitted = jax.jit(fn, in_shardings=(replicated, sharded))
    return jitted, variables, jax.device_put(x, sharded)


def build_torch(name: str, batch: int):
    """A no-argument callable running timm / open_clip on `batch` inputs, or None (not
    importable)."""
    _, spec = NETS[name]
    try:
        import torch  # noqa: PLC0415
        if spec.startswith("timm:"):
            import timm  # noqa: PLC0415
            kw = dict(features_only=True, out_indices=(1, 2, 3, 4)) if "lite0" in spec else {}
            net = timm.create_model(spec[5:], pretrained=False, **kw).eval()
            x = torch.randn(batch, 3, 224, 224)
            run = lambda: net(x)
        else:
            import open_clip  # noqa: PLC0415
            _, model_name, tower = spec.split(":")
            net = open_clip.create_model(model_name, pretrained=None).eval()
            if tower == "text":
                x = torch.randint(1, 49406, (batch, 77))
                run = lambda: net.encode_text(x)
            else:
                x = torch.randn(batch, 3, 224, 224)
                run = lambda: net.encode_image(x)
    except Exception as e:  # noqa: BLE001 - any import/build failure means "no baseline"
        print(f"# {name}: no torch baseline ({type(e).__name__}: {e})", flush=True)
        return None

    def call():
        with torch.no_grad():
            run()
    return call


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_net(name: str, batch: int, rounds: int, mesh: Mesh, tiny: bool, torch_too: bool):
    """{'ours': [s per round], 'torch': [...] or None} with rounds interleaved."""
    fn, variables, x = build_jax(name, batch, mesh, tiny)
    ours = lambda: jax.block_until_ready(fn(variables, x))
    ours()  # compile + warm-up
    theirs = build_torch(name, batch) if torch_too and not tiny else None
    if theirs is not None:
        theirs()  # warm-up
    times = {"ours": [], "torch": [] if theirs else None}
    for _ in range(rounds):
        times["ours"].append(_seconds(ours))
        if theirs:
            times["torch"].append(_seconds(theirs))
    return times


def report(name: str, batch: int, times: dict) -> str:
    """One table row: images/s (median over rounds) of ours, theirs and the ratio."""
    ours = batch / statistics.median(times["ours"])
    if not times.get("torch"):
        return f"{name:16s} {batch:6d} {ours:12.2f} {'-':>12s} {'-':>7s}"
    theirs = batch / statistics.median(times["torch"])
    return f"{name:16s} {batch:6d} {ours:12.2f} {theirs:12.2f} {ours / theirs:7.2f}"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", default=",".join(NETS), help=f"comma-separated, from {list(NETS)}")
    p.add_argument("--batch", type=int, default=2, help="inputs per call (a multiple of the "
                   "device count; small by default for CPU)")
    p.add_argument("--rounds", type=int, default=3, help="timed calls per net (median)")
    p.add_argument("--tiny", action="store_true", help="tiny test configurations (smoke run)")
    p.add_argument("--no-torch", action="store_true", help="skip the timm / open_clip baseline")
    args = p.parse_args(argv)
    args.nets = [n.strip() for n in args.nets.split(",") if n.strip()]
    unknown = [n for n in args.nets if n not in NETS]
    if unknown:
        raise ValueError(f"--nets: unknown {unknown}; expected some of {list(NETS)}")
    if args.rounds < 1:
        raise ValueError(f"--rounds must be >= 1, got {args.rounds}")
    if args.batch < 1 or args.batch % jax.device_count():
        raise ValueError(f"--batch {args.batch} must be a positive multiple of the device count "
                         f"{jax.device_count()} (the batch is sharded over 'data')")
    return args


def main(argv=None) -> list:
    args = parse_args(argv)
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    print(f"# {jax.device_count()} x {jax.devices()[0].device_kind}, batch {args.batch}, "
          f"median of {args.rounds} rounds{' (tiny configs)' if args.tiny else ''}")
    print(f"{'net':16s} {'batch':>6s} {'jax img/s':>12s} {'torch img/s':>12s} {'ratio':>7s}")
    rows = []
    for name in args.nets:
        times = time_net(name, args.batch, args.rounds, mesh, args.tiny, not args.no_torch)
        rows.append(report(name, args.batch, times))
        print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    main()
