"""Images, style-mixing grids and latent interpolations from a StyleGAN2/3/XL generator.

    python -m gan_zoo.tools.generate --network=ffhq.npz --seeds=0-7,12 --trunc=0.7 --outdir=out
    python -m gan_zoo.tools.generate --network=ffhq.npz --latents=out/projected_w.npz --outdir=out
    python -m gan_zoo.tools.generate --network=ffhq.npz --mode=mix --row_seeds=1-3 \
        --col_seeds=10-14 --styles=0-6 --outdir=out
    python -m gan_zoo.tools.generate --network=ffhq.npz --mode=interp --seeds=1,2,3 --frames=16 \
        --outdir=out
    python -m gan_zoo.tools.generate --workdir=/tmp/run --config=configs/stylegan2.py:smoke ...
    python -m gan_zoo.tools.generate --workdir=/tmp/t --config=configs/stylegan_t.py:digits_text \
        --prompt="a handwritten digit seven" --seeds=0-3 --trunc=0.7 --outdir=out  (generate_text)

Mix and interp (gan_zoo.tools.edit) take classes for a conditional G: `--row_classes`,
`--col_classes`, and `--classes` for class interpolation between (seed, class) keyframes.

Released networks: `--network` also takes the official files as they are: an NVlabs network
pickle (`network-snapshot-*.pkl`, `stylegan2-ffhq-1024x1024.pkl`, StyleGAN2 or StyleGAN3) or a
BigGAN-PyTorch `.pth` / `.pt` file or checkpoint folder (G_ema.pth, with the run's kwargs from the
`state_dict.pth` beside it or `--biggan_kwargs=JSON`). They are read by gan_zoo.convert.official,
which never executes anything from the file. `--which=G` takes the non-EMA generator. BigGAN:
images and interpolations (in z, one class) of `--class`; `--z_trunc=τ` draws z from N(0, I)
truncated to |z_i| <= τ (BigGAN §3.1, the truncation trick) instead of ψ.

    python -m gan_zoo.tools.generate --network=stylegan3-t-ffhqu-256x256.pkl --seeds=0-3 --outdir=o
    python -m gan_zoo.tools.generate --network=weights/BigGAN_C10 --class=3 --seeds=0-7 \
        --z_trunc=0.5 --outdir=out

Networks: `--network=PATH.npz` is an official G state dict (torch names, e.g. `G_ema.state_dict()`
saved with np.savez) plus the constructor kwargs (`G.init_kwargs`) as `--network_kwargs=JSON`
(text or a .json file), or in PATH with suffix .json beside it; the JSON may also be
{"class_name": ..., "init_kwargs": {...}}. StyleGAN3 is recognised by class_name or by the
`synthesis.input.freqs` tensor (or `--arch`). `--workdir` + `--config` load the EMA generator of
the trainer's latest checkpoint. z of seed s is np.random.RandomState(s).randn(1, z_dim), as in
the official gen_images.py / style_mixing.py.

Latents: `--latents` is a .npy or an .npz with `z` [N, z_dim] or `w` [N, num_ws, w_dim] /
[N, w_dim]; a `z` .npz may carry per-latent labels, `c` [N, c_dim] (one-hot) or `y` [N] (class
ids), used instead of --class. An .npz may also hold noise maps under their torch names
(`synthesis.b8.conv0.noise_const`, as gan_zoo.tools.project writes them): they replace the
network's const noise for every latent of the file (--noise_mode=const), so the projector's
projected_w.npz renders as its proj.png.

This module is the CLI and its dispatch; the latent, synthesis and image-writing helpers it
shares with edit, generate_biggan and generate_text live in gan_zoo.tools.sampling.
"""

import argparse
import json
import os
import pathlib
import sys

import jax.numpy as jnp
import numpy as np

from gan_zoo.config_file import load_config_file
from gan_zoo.tools.sampling import latents_from_args, synthesize, write_images

MODES = ("images", "mix", "interp")


# ----------------------------------------------------------------------------------------------
# Networks.

def _network_kwargs(path: pathlib.Path, text) -> tuple:
    """(init kwargs, class_name or '') from --network_kwargs (JSON or .json) or PATH.json."""
    if text:
        src = text if text.lstrip().startswith("{") else pathlib.Path(text).read_text()
        where = "--network_kwargs"
    elif path.with_suffix(".json").is_file():
        src, where = path.with_suffix(".json").read_text(), str(path.with_suffix(".json"))
    else:
        raise ValueError(f"--network_kwargs: {path} needs the generator's constructor kwargs "
                         f"(G.init_kwargs) as JSON, or a file {path.with_suffix('.json')}")
    try:
        kw = json.loads(src)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not valid JSON ({e})") from None
    if "init_kwargs" in kw:
        return dict(kw["init_kwargs"]), str(kw.get("class_name", ""))
    return dict(kw), str(kw.get("class_name", ""))


OFFICIAL_SUFFIXES = (".pkl", ".pth", ".pt")  # NVlabs pickles, BigGAN-PyTorch torch.save files


def json_arg(flag: str, text) -> dict:
    """A dict from JSON text or a .json file named by `flag` (None for no text)."""
    if not text:
        return None
    try:
        src = text if text.lstrip().startswith("{") else pathlib.Path(text).read_text()
        out = json.loads(src)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{flag}: expected JSON text or a .json file, got {text!r} ({e})") \
            from None
    if not isinstance(out, dict):
        raise ValueError(f"{flag}: expected a JSON object, got {type(out).__name__}")
    return out


def load_official_network(path, which: str = "G_ema", biggan_kwargs=None) -> tuple:
    """(G, variables) of an NVlabs pickle or BigGAN-PyTorch file / folder (read, never run)."""
    from gan_zoo.convert import official

    net = official.load_official(str(path), biggan_kwargs=biggan_kwargs)
    variables = net.g_ema_variables if which == "G_ema" else net.g_variables
    if variables is None:
        raise ValueError(f"--which={which}: {path} ({net.family}) holds no {which} generator")
    return net.G, variables


def is_official_file(path) -> bool:
    path = pathlib.Path(path)
    return path.is_dir() or path.suffix in OFFICIAL_SUFFIXES


def load_network(path, kwargs_text=None, arch: str = "auto", impl: str = "auto",
                 which: str = "G_ema", biggan_kwargs=None) -> tuple:
    """(G, variables) from an official file (is_official_file) or a state dict .npz + kwargs."""
    from gan_zoo.convert import stylegan2 as sg2_convert
    from gan_zoo.convert import stylegan3 as sg3_convert

    path = pathlib.Path(path)
    if is_official_file(path):
        if not path.exists():
            raise FileNotFoundError(f"--network: {path} not found")
        return load_official_network(path, which, json_arg("--biggan_kwargs", biggan_kwargs))
    if not path.is_file():
        raise FileNotFoundError(f"--network: {path} not found (an official G state dict .npz)")
    with np.load(path) as f:
        state = {k: f[k] for k in f.files}
    kwargs, class_name = _network_kwargs(path, kwargs_text)
    if arch == "auto":
        sg3 = "stylegan3" in class_name or "synthesis.input.freqs" in state
        arch = "stylegan3" if sg3 else "stylegan2"
    if arch == "stylegan3":
        G = sg3_convert.generator_from_kwargs(kwargs, impl=impl)
        return G, sg3_convert.convert_state_dict(state, G)
    G = sg2_convert.generator_from_kwargs(kwargs, impl=impl)
    return G, sg2_convert.convert_state_dict(state, G)


def load_workdir(workdir: str, config) -> tuple:
    """(G, variables) of the EMA generator in the workdir's latest checkpoint."""
    from gan_zoo.train import sharding
    from gan_zoo.train.loop import restore_run

    recipe, state, _ = restore_run(config, workdir, sharding.make_mesh(config.mesh))
    G = recipe.networks["g"]
    if not (hasattr(G, "map") and hasattr(G, "synthesize")):
        raise ValueError(f"--config: recipe {config.recipe!r} has no StyleGAN generator "
                         f"(G.map / G.synthesize); got {type(G).__name__}")
    params = state.ema_params if state.ema_params is not None else state.params["g"]
    return G, {"params": params, **state.collections["g"]}


def add_network_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("network (one of --network or --workdir + --config)")
    g.add_argument("--network", help="official network: NVlabs .pkl, BigGAN-PyTorch .pth / .pt "
                   "file or checkpoint folder, or a G state dict .npz (torch names)")
    g.add_argument("--which", default="G_ema", choices=("G_ema", "G"),
                   help="official .pkl / BigGAN folder: the EMA or the raw generator")
    g.add_argument("--biggan_kwargs", help="BigGAN-PyTorch run config (JSON text or .json) when "
                   "no state_dict.pth lies beside the .pth")
    g.add_argument("--network_kwargs", help="G constructor kwargs: JSON text or a .json file "
                   "(default: the .json beside --network)")
    g.add_argument("--arch", default="auto", choices=("auto", "stylegan2", "stylegan3"))
    g.add_argument("--workdir", help="trainer workdir: the latest checkpoint's EMA G")
    g.add_argument("--config", help="config of --workdir, e.g. configs/stylegan2.py:smoke")
    g.add_argument("--impl", default="auto", choices=("auto", "xla", "pallas"))


def network_from_args(args) -> tuple:
    """(G, variables) from the flags of add_network_flags."""
    if bool(args.network) == bool(args.workdir):
        raise ValueError("--network / --workdir: give exactly one network source")
    if args.network:
        return load_network(args.network, args.network_kwargs, args.arch, args.impl,
                            args.which, args.biggan_kwargs)
    if not args.config:
        raise ValueError("--config: --workdir needs the run's config (configs/<name>.py:preset)")
    return load_workdir(args.workdir, load_config_file(args.config))


# ----------------------------------------------------------------------------------------------
# Noise maps of a --latents file.

def with_latent_noise(path, variables, noise_mode: str = "const"):
    """variables with the `*.noise_const` maps of the --latents .npz (if any) as noise buffers."""
    if pathlib.Path(path).suffix != ".npz" or not os.path.isfile(path):
        return variables  # load_latents reports a missing file
    from gan_zoo.tools import projector

    with np.load(path) as f:
        noise = projector.noise_from_npz({k: f[k] for k in f.files
                                          if k not in ("w", "z", "c", "y")},
                                         variables, where=f"--latents: {path}")
    if not noise:
        return variables
    if noise_mode != "const":
        print(f"warning: the noise maps in {path} are used only with --noise_mode=const",
              file=sys.stderr)
    own, rest = projector.split_noise(variables)
    return projector.merge_noise(rest, {**own, **{p: jnp.asarray(v) for p, v in noise.items()}})


# ----------------------------------------------------------------------------------------------
# Modes.

def run_images(args, G, variables) -> list:
    """One PNG per latent (and grid.png); returns the written paths."""
    names, ws = latents_from_args(args, G, variables)
    images = synthesize(G, variables, ws, args.noise_mode, args.noise_seed, args.batch_size)
    return write_images(args, names, images)


def _edit_runner(name: str):
    """The mix / interp runners live in gan_zoo.tools.edit (class-aware, StyleGAN-XL too)."""
    def run(args, G, variables):
        from gan_zoo.tools import edit

        return getattr(edit, name)(args, G, variables)
    return run


RUNNERS = {"images": run_images, "mix": _edit_runner("run_mix"),
           "interp": _edit_runner("run_interp")}


def is_stylegan(G) -> bool:
    return hasattr(G, "map") and hasattr(G, "synthesize")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_network_flags(parser)
    parser.add_argument("--outdir", required=True, help="output folder (created)")
    parser.add_argument("--mode", default="images", choices=MODES)
    parser.add_argument("--seeds", help="images / interp: seeds, e.g. 0-7,12")
    parser.add_argument("--latents", help="images / interp: .npy or .npz ('z' or 'w') latents")
    parser.add_argument("--latent_space", default="auto", choices=("auto", "z", "w"),
                        help="how to read --latents (auto: 3-D = w, 2-D = z)")
    parser.add_argument("--trunc", type=float, default=1.0, help="truncation psi (1 = none)")
    parser.add_argument("--trunc_cutoff", type=int, default=None,
                        help="truncate only the first N w slots")
    parser.add_argument("--class", dest="class_idx", type=int, default=None,
                        help="class id of a conditional G")
    parser.add_argument("--z_trunc", type=float, default=0.0,
                        help="BigGAN: truncation threshold τ of z (0 = none; BigGAN §3.1)")
    parser.add_argument("--noise_mode", default="const", choices=("const", "random", "none"))
    parser.add_argument("--noise_seed", type=int, default=0, help="noise_mode=random: key seed")
    parser.add_argument("--grid", action="store_true", help="images: also write grid.png")
    parser.add_argument("--grid_cols", type=int, default=0, help="grid columns (0: square)")
    parser.add_argument("--no_singles", action="store_true", help="only the grid / strip")
    parser.add_argument("--row_seeds", help="mix: row seeds")
    parser.add_argument("--col_seeds", help="mix: column seeds (their styles are copied)")
    parser.add_argument("--styles", default="0-6", help="mix: w slots copied from the columns")
    parser.add_argument("--frames", type=int, default=8, help="interp: frames per segment")
    parser.add_argument("--classes", help="interp: keyframe classes, paired with --seeds")
    parser.add_argument("--row_classes", help="mix: classes of the row seeds (cycled)")
    parser.add_argument("--col_classes", help="mix: classes of the column seeds (cycled)")
    parser.add_argument("--mp4", type=int, default=0, help="interp: also interp.mp4 at this "
                        "fps (needs imageio-ffmpeg)")
    parser.add_argument("--batch_size", type=int, default=8)
    from gan_zoo.tools import generate_text

    generate_text.add_prompt_flags(parser)  # --prompt, --style: StyleGAN-T runs
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.prompt:  # text-to-image (StyleGAN-T workdir): gan_zoo.tools.generate_text
            from gan_zoo.tools import generate_text

            os.makedirs(args.outdir, exist_ok=True)
            paths = generate_text.run(args)
            print(f"wrote {len(paths)} images to {args.outdir}")
            return 0
        G, variables = network_from_args(args)
        if args.latents and args.mode != "mix" and is_stylegan(G):
            variables = with_latent_noise(args.latents, variables, args.noise_mode)
        os.makedirs(args.outdir, exist_ok=True)
        if is_stylegan(G):
            paths = RUNNERS[args.mode](args, G, variables)
        else:
            from gan_zoo.tools import generate_biggan

            paths = generate_biggan.RUNNERS[args.mode](args, G, variables)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} images to {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
