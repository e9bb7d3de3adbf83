"""gan_zoo.augment's ADA pipeline vs the official StyleGAN2-ADA / StyleGAN3 `AugmentPipe`.

    python benchmarks/ada_vs_official.py --stylegan3-path /path/to/stylegan3 [--res 16]

Needs torch beside gan_zoo (never a gan_zoo dependency) and a working tree of NVlabs/stylegan3.
The official pipe runs one transform at a time in its `debug_percentile` mode, which fixes every
parameter from one number q (post-rotation 0), then all twelve at once ('bgc'); ours runs
`apply_geometry` / `apply_color` with the same parameters. Prints the max |difference| per
transform and q. --write-golden PATH saves the input, the parameters (keys p__<case>__<name>)
and the official outputs as .npz (tests/augment_ada_golden.npz, made with --res 8).
"""

import argparse
import math
import pathlib
import sys
import types

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]

GEOM = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
QS = (0.2, 0.7, 0.9)


def _official(path: str):
    try:
        import pkg_resources  # noqa: F401, PLC0415 (official conv2d_gradfix imports it)
    except ImportError:
        import packaging.version  # noqa: PLC0415

        sys.modules["pkg_resources"] = types.SimpleNamespace(
            parse_version=packaging.version.parse)
    sys.path.insert(0, path)
    from training.augment import AugmentPipe  # noqa: PLC0415
    return AugmentPipe


def debug_params(name: str, q: float, h: int, w: int) -> dict:
    """Our parameters for the official debug_percentile q (AugmentPipe defaults)."""
    from scipy.special import erfinv  # noqa: PLC0415

    z = float(erfinv(q * 2 - 1))
    table = {
        "xflip": math.floor(q * 2), "rotate90": math.floor(q * 4),
        "xint": [round((q * 2 - 1) * 0.125 * w), round((q * 2 - 1) * 0.125 * h)],
        "scale": 2 ** (z * 0.2), "rotate": (q * 2 - 1) * math.pi, "aniso": 2 ** (z * 0.2),
        "xfrac": [z * 0.125 * w, z * 0.125 * h], "brightness": z * 0.2,
        "contrast": 2 ** (z * 0.5), "lumaflip": math.floor(q * 2),
        "hue": (q * 2 - 1) * math.pi, "saturation": 2 ** z,
    }
    names = GEOM + COLOR if name == "bgc" else (name,)
    return {("rotate_pre" if k == "rotate" else k): np.asarray([table[k]], np.float32)
            for k in names}


def ours(name: str, params: dict, x_nhwc):
    sys.path.insert(0, str(REPO))
    from gan_zoo import augment  # noqa: PLC0415

    geom = {k: v for k, v in params.items() if k not in COLOR}
    if geom:
        x_nhwc = augment.apply_geometry(x_nhwc, augment.geometry_matrix(geom, 1))
    return np.asarray(augment.apply_color(x_nhwc, augment.color_matrix(params, 1)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stylegan3-path", required=True)
    ap.add_argument("--res", type=int, default=16)
    ap.add_argument("--write-golden", default="")
    args = ap.parse_args(argv)
    import torch  # noqa: PLC0415

    pipe_cls = _official(args.stylegan3_path)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, args.res, args.res)).astype(np.float32)
    golden = {"x": x.transpose(0, 2, 3, 1)}
    for name in GEOM + COLOR + ("bgc",):
        pipe = pipe_cls(**{k: 1 for k in (GEOM + COLOR if name == "bgc" else (name,))})
        for q in QS:
            ref = pipe(torch.tensor(x), debug_percentile=q).numpy().transpose(0, 2, 3, 1)
            params = debug_params(name, q, args.res, args.res)
            got = ours(name, params, golden["x"])
            golden[f"{name}_{q}"] = ref
            golden.update({f"p__{name}_{q}__{k}": v for k, v in params.items()})
            print(f"{name:11s} q={q}: max |ours - official| = {np.abs(got - ref).max():.2e}")
    if args.write_golden:
        np.savez_compressed(args.write_golden, **golden)


if __name__ == "__main__":
    main()
