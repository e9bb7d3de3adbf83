"""Style mixing and class / latent interpolation for StyleGAN2, StyleGAN3 and StyleGAN-XL
generators: the `--mode=mix` and `--mode=interp` runners of gan_zoo.tools.generate.

Style mixing (StyleGAN §3.1; SG-XL §4.2, Fig. 5): cell (r, c) of a rows x cols grid takes, per
layer, the w of row seed r, except the layers `--styles` (a range of w slots, 0 = the first
layer / StyleGAN3 Fourier input) which take column seed c's w. For a conditional G each row and
column has a class: `--row_classes` / `--col_classes` (cycled over the seeds; default `--class`).

Interpolation (SG-XL §4.2, Fig. 4; official gen_video.py renders ws of (seed, class) keyframes):
linear in W between consecutive keyframes, `--frames` per segment, endpoints exact. Keyframes are
the `--seeds` (latent interpolation, one `--class`) or, with `--classes`, the pairs
(seeds[k % S], classes[k % K]) for k < max(S, K): one seed and several classes interpolate
between classes at a fixed z (class interpolation). Writes frame*.png and strip.png, and with
`--mp4=FPS` a video (only where imageio-ffmpeg is installed).

    python -m gan_zoo.tools.generate --workdir=W --config=C --mode=interp --seeds=3 \
        --classes=1,207,980 --frames=16 --outdir=out         # class interpolation
    python -m gan_zoo.tools.generate --workdir=W --config=C --mode=mix --row_seeds=1-3 \
        --col_seeds=10-13 --row_classes=1 --col_classes=1,2 --styles=0-5 --outdir=out
"""

import os

import numpy as np

from gan_zoo.tools import sampling


def one_hot(G, classes, flag: str) -> np.ndarray:
    """One-hot [len(classes), c_dim]; ValueError naming `flag` for an unconditional G or a class
    outside [0, c_dim)."""
    if G.c_dim == 0:
        raise ValueError(f"{flag}: the network is unconditional (c_dim = 0)")
    bad = [k for k in classes if not 0 <= k < G.c_dim]
    if bad:
        raise ValueError(f"{flag}: classes {bad} outside [0, {G.c_dim})")
    return np.eye(G.c_dim, dtype=np.float32)[list(classes)]


def seed_ws(G, variables, seeds, classes, args, flag: str) -> np.ndarray:
    """ws [len(seeds), num_ws, w_dim] of the seeds (official z), class k = classes[k % K]
    (None: --class), with --trunc / --trunc_cutoff (class-conditional w_avg for SG-XL)."""
    z = sampling.seed_z(seeds, G.z_dim)
    if classes is None:
        c = sampling.class_labels(G, args.class_idx, len(seeds))
    else:
        c = one_hot(G, [classes[k % len(classes)] for k in range(len(seeds))], flag)
    return np.asarray(sampling.map_z(G, variables, z, c, args.trunc, args.trunc_cutoff))


def _classes(args, name: str):
    text = getattr(args, name, None)
    return sampling.parse_range(f"--{name}", text) if text else None


def keyframes(args) -> tuple:
    """(seeds, classes) of the interpolation keyframes: (seeds[k % S], classes[k % K])."""
    seeds = sampling.parse_range("--seeds", args.seeds)
    classes = _classes(args, "classes")
    n = max(len(seeds), len(classes or ()))
    return [seeds[k % len(seeds)] for k in range(n)], classes and [
        classes[k % len(classes)] for k in range(n)]


def run_mix(args, G, variables) -> list:
    """Style-mixing grid: top row the column seeds, left column the row seeds, cell (r, c) =
    row seed's w with the --styles slots from column seed c (official style_mixing.py)."""
    from gan_zoo.train import writers

    rows = sampling.parse_range("--row_seeds", args.row_seeds)
    cols = sampling.parse_range("--col_seeds", args.col_seeds)
    styles = sampling.parse_range("--styles", args.styles, 0, G.num_ws - 1)
    w_rows = seed_ws(G, variables, rows, _classes(args, "row_classes"), args, "--row_classes")
    w_cols = seed_ws(G, variables, cols, _classes(args, "col_classes"), args, "--col_classes")
    mixed = sampling.mix_ws(w_rows, w_cols, styles).reshape(-1, G.num_ws, G.w_dim)
    images = sampling.synthesize(G, variables, np.concatenate([w_rows, w_cols, mixed]),
                                 args.noise_mode, args.noise_seed, args.batch_size)
    x = writers.to_uint8(images)
    nr, nc = len(rows), len(cols)
    cells = np.zeros((nr + 1, nc + 1) + x.shape[1:], np.uint8)  # [R+1, C+1, H, W, C]
    cells[1:, 0], cells[0, 1:] = x[:nr], x[nr:nr + nc]
    cells[1:, 1:] = x[nr + nc:].reshape((nr, nc) + x.shape[1:])
    paths = []
    if not args.no_singles:
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                paths.append(os.path.join(args.outdir, f"{r}-{c}.png"))
                sampling.save_image(paths[-1], cells[i + 1, j + 1])
    grid = cells.transpose(0, 2, 1, 3, 4).reshape(
        (nr + 1) * x.shape[1], (nc + 1) * x.shape[2], x.shape[3])
    paths.append(os.path.join(args.outdir, "grid.png"))
    sampling.save_image(paths[-1], grid)
    return paths


def interp_keyframe_ws(args, G, variables) -> np.ndarray:
    """ws [K, num_ws, w_dim] of the keyframes: --seeds with --classes, else --seeds /
    --latents with one --class (sampling.latents_from_args)."""
    if not getattr(args, "classes", None):
        return sampling.latents_from_args(args, G, variables, n_min=2)[1]
    if args.latents or not args.seeds:
        raise ValueError("--classes: interpolates between (seed, class) keyframes; give --seeds "
                         "(not --latents)")
    seeds, classes = keyframes(args)
    if len(seeds) < 2:
        raise ValueError("--seeds / --classes: interpolation needs at least 2 keyframes")
    return seed_ws(G, variables, seeds, classes, args, "--classes")


def run_interp(args, G, variables) -> list:
    """Lerp in W between consecutive keyframes: PNG frames, strip.png [, interp.mp4]."""
    sampling.check_frames(args.frames)
    fps = getattr(args, "mp4", 0)
    if fps:
        check_mp4()
    ws = sampling.interp_ws(interp_keyframe_ws(args, G, variables), args.frames)
    images = sampling.synthesize(G, variables, ws, args.noise_mode, args.noise_seed,
                                 args.batch_size)
    paths = sampling.write_frames(args, images)
    if fps:
        paths.append(write_mp4(os.path.join(args.outdir, "interp.mp4"), images, fps))
    return paths


def check_mp4() -> None:
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        raise ValueError("--mp4: needs imageio-ffmpeg (pip install imageio imageio-ffmpeg); "
                         "without it use the PNG frames") from None


def write_mp4(path: str, images, fps: int) -> str:
    """float images [N, H, W, C] -> an H.264 .mp4 at `fps` frames per second."""
    import imageio.v2 as imageio

    from gan_zoo.train import writers

    with imageio.get_writer(path, fps=fps, codec="libx264") as video:
        for frame in writers.to_uint8(images):
            video.append_data(np.repeat(frame, 3, axis=-1) if frame.shape[-1] == 1 else frame)
    return path
