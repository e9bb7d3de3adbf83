"""Project an image into the W space of a StyleGAN2/3 generator (StyleGAN2 §5, App. D).

    python -m gan_zoo.tools.project --network=ffhq.npz --target=face.png --outdir=out
    python -m gan_zoo.tools.project --network=ffhq.npz --target=face.png --outdir=out \
        --lpips=vgg16_lpips.npz                   # the paper's distance (needs LPIPS-VGG16)
    python -m gan_zoo.tools.generate --network=ffhq.npz --latents=out/projected_w.npz --outdir=out
    (generate renders w with the optimised noise maps stored beside it: proj.png again)

The network is `--network` (an NVlabs StyleGAN2/3 .pkl read without executing it, or a state
dict .npz + kwargs) or a training checkpoint (`--workdir` + `--config`), as in
gan_zoo.tools.generate. The target is centre-cropped to a square and resized (Lanczos) to the
generator's resolution, as in the official projector.py. Writes target.png, proj.png (the
projection, noise_mode 'const' with the optimised noise maps), projected_w.npz (`w`
[1, num_ws, w_dim] and the noise maps under their torch names, e.g.
`synthesis.b8.conv0.noise_const`; StyleGAN3 has no noise inputs, so only `w`), projection_log.npz
(`dist`, `reg`, `w` per step) and, with --save_frames, frames/step*.png (target | projection).

Distance: with --lpips=WEIGHTS.npz, LPIPS-VGG16 (images in [0, 255], box-downsampled to 256²), as
in the paper. gan_zoo does not ship LPIPS-VGG16 yet: the flag then fails with a message. Without
it, the fallback is `projector.pixel_pyramid_features`: the sum over a 2x2-mean image pyramid
(full size down to 8²) of the per-level MSE of the images in [-1, 1]. It recovers images of the
generator itself well; for real photos expect blurrier matches than LPIPS.
"""

import argparse
import os
import sys

import jax
import numpy as np

from gan_zoo.tools import generate, projector

SEED = 303  # official projector default


def load_target(path, resolution: int, channels: int = 3) -> np.ndarray:
    """uint8 [R, R, C]: centre square crop, Lanczos resize (official projector.py)."""
    from PIL import Image

    if not os.path.isfile(path):
        raise FileNotFoundError(f"--target: {path} not found (an image file)")
    try:
        img = Image.open(path).convert("L" if channels == 1 else "RGB")
    except OSError as e:
        raise ValueError(f"--target: {path} is not a readable image ({e})") from None
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
    img = np.asarray(img.resize((resolution, resolution), Image.LANCZOS), np.uint8)
    return img.reshape(resolution, resolution, channels)


def lpips_feature_fn(path):
    """LPIPS-VGG16 features whose squared L2 distance is LPIPS, from the .npz at `path` (lpips
    package names, see gan_zoo.convert.vgg16): fn(images [N, H, W, 3] in [0, 255]) -> [N, F]."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--lpips: {path} not found (LPIPS-VGG16 weights .npz)")
    from gan_zoo.convert import vgg16
    from gan_zoo.feature_nets import lpips

    return lpips.lpips_features(vgg16.load_lpips(path))


def write_outputs(outdir, G, variables, target, out: dict, save_frames: int = 0) -> list:
    """target.png, proj.png, projected_w.npz (w + noise maps), projection_log.npz [+ frames]."""
    from gan_zoo.train import writers

    os.makedirs(outdir, exist_ok=True)
    w = np.broadcast_to(out["w"][-1], (1, G.num_ws, G.w_dim)).astype(np.float32)
    proj = writers.to_uint8(projector.synthesize(G, variables, w, out["noise"]))[0]
    paths = [os.path.join(outdir, n) for n in ("target.png", "proj.png", "projected_w.npz",
                                               "projection_log.npz")]
    generate.save_image(paths[0], np.asarray(target, np.uint8))
    generate.save_image(paths[1], proj)
    np.savez(paths[2], w=w, **projector.noise_to_npz(out["noise"]))
    np.savez(paths[3], dist=out["dist"], reg=out["reg"], w=out["w"])
    if save_frames:
        os.makedirs(os.path.join(outdir, "frames"), exist_ok=True)
        for i in range(0, len(out["w"]), save_frames):
            img = writers.to_uint8(projector.synthesize(G, variables, out["w"][i], out["noise"]))
            paths.append(os.path.join(outdir, "frames", f"step{i:04d}.png"))
            generate.save_image(paths[-1], np.concatenate([target, img[0]], axis=1))
    return paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    generate.add_network_flags(parser)
    d = projector.ProjectorConfig()
    parser.add_argument("--target", required=True, help="image to project")
    parser.add_argument("--outdir", required=True, help="output folder (created)")
    parser.add_argument("--num_steps", type=int, default=d.num_steps)
    parser.add_argument("--w_avg_samples", type=int, default=d.w_avg_samples)
    parser.add_argument("--initial_learning_rate", type=float, default=d.initial_learning_rate)
    parser.add_argument("--regularize_noise_weight", type=float,
                        default=d.regularize_noise_weight)
    parser.add_argument("--noise_pyramid_gain", type=float, default=d.noise_pyramid_gain,
                        help="per-level gain of the noise pyramid: 1 = official code, 2 = paper")
    parser.add_argument("--lpips", help="LPIPS-VGG16 weights .npz (default: pixel pyramid)")
    parser.add_argument("--class", dest="class_idx", type=int, default=None,
                        help="class of a conditional G (for the w statistics)")
    parser.add_argument("--seed", type=int, default=SEED, help="noise init / latent noise key")
    parser.add_argument("--log_every", type=int, default=100, help="progress line every N steps")
    parser.add_argument("--save_frames", type=int, default=0,
                        help="write frames/step*.png every N steps (0: off)")
    return parser


def run(args) -> list:
    """Loads the network and target, projects, writes the outputs; returns the written paths."""
    if args.num_steps < 1 or args.w_avg_samples < 1:
        raise ValueError("--num_steps / --w_avg_samples: expected positive integers")
    feature_fn = lpips_feature_fn(args.lpips) if args.lpips else projector.pixel_pyramid_features
    G, variables = generate.network_from_args(args)
    if not generate.is_stylegan(G):
        raise ValueError(f"--network: projection needs a StyleGAN2/3 W space; the network is a "
                         f"{type(G).__name__} from {G.__module__}")
    target = load_target(args.target, G.img_resolution, G.img_channels)
    cfg = projector.ProjectorConfig(
        num_steps=args.num_steps, w_avg_samples=args.w_avg_samples,
        initial_learning_rate=args.initial_learning_rate,
        regularize_noise_weight=args.regularize_noise_weight,
        noise_pyramid_gain=args.noise_pyramid_gain)
    c = generate.class_labels(G, args.class_idx, 1)
    w_avg, w_std = projector.w_stats(G, variables, cfg.w_avg_samples,
                                     c=None if c is None else c[0])
    log = lambda step, dist, reg: print(f"step {step + 1:5d}/{cfg.num_steps}: dist {dist:.6g} "
                                        f"noise_reg {reg:.3g}", flush=True)
    out = projector.project(G, variables, target, feature_fn, jax.random.PRNGKey(args.seed), cfg,
                            w_avg, w_std, chunk=args.log_every, log=log)
    return write_outputs(args.outdir, G, variables, target, out, args.save_frames)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        paths = run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} files to {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
