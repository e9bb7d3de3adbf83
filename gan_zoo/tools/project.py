"""Project an image into the W space of a StyleGAN2/3 generator (StyleGAN2 §5, App. D).

    python -m gan_zoo.tools.project --network=ffhq.npz --target=face.png --outdir=out
    python -m gan_zoo.tools.project --network=ffhq.npz --target=face.png --outdir=out \
        --lpips=vgg16_lpips.npz                   # the paper's distance (needs LPIPS-VGG16)
    python -m gan_zoo.tools.generate --network=ffhq.npz --latents=out/projected_w.npz --outdir=out
    (generate renders w with the optimised noise maps stored beside it: proj.png again)
    python -m gan_zoo.tools.project --workdir=/tmp/xl --config=configs/stylegan_xl.py:imagenet \
        --target=jay.png --outdir=out --lpips=vgg16_lpips.npz --classifier=deit_base.safetensors \
        --pti                                      # StyleGAN-XL + Pivotal Tuning Inversion

The network is `--network` (an NVlabs StyleGAN2/3 .pkl read without executing it, or a state
dict .npz + kwargs) or a training checkpoint (`--workdir` + `--config`), as in
gan_zoo.tools.generate. The target is centre-cropped to a square and resized (Lanczos) to the
generator's resolution, as in the official projector.py. Writes target.png, proj.png (the
projection, noise_mode 'const' with the optimised noise maps), projected_w.npz (`w`
[1, num_ws, w_dim] and the noise maps under their torch names, e.g.
`synthesis.b8.conv0.noise_const`; StyleGAN3 has no noise inputs, so only `w`), projection_log.npz
(`dist`, `reg`, `w` per step) and, with --save_frames, frames/step*.png (target | projection).

StyleGAN-XL (SG-XL §4.2, spec stylegan_xl_and_t.md §1.9, official run_inversion.py): no latent
noise and no noise regulariser (projector.xl_config); a conditional G without --class starts
from the mean of f(z, c) over 10k z (seed 123) with classes c drawn from the softmax of DeiT-base
(`--classifier`: a local timm deit_base_distilled_patch16_224 .safetensors / .npz) on the target.

`--pti` then runs Pivotal Tuning Inversion (gan_zoo.tools.pti: 350 Adam steps, lr 3e-4, MSE +
LPIPS + locality regulariser) around the projected w and writes proj_pti.png, pti_log.npz and the
tuned G: `pti_workdir/` for a --workdir source (generate --workdir=out/pti_workdir with the same
--config), G_pti.npz + G_pti.json for a --network source (generate --network=out/G_pti.npz).

Distance: with --lpips=WEIGHTS.npz, LPIPS-VGG16 (images in [0, 255], box-downsampled to 256²), as
in the paper (weights: gan_zoo.convert.vgg16, lpips package names). Without it, the fallback
is `projector.pixel_pyramid_features`: the sum over a 2x2-mean image pyramid
(full size down to 8²) of the per-level MSE of the images in [-1, 1]. It recovers images of the
generator itself well; for real photos expect blurrier matches than LPIPS.
"""

import argparse
import os
import sys

import jax
import numpy as np

from gan_zoo.tools import generate, projector, pti, sampling

SEED = 303  # official projector default
CLASSIFIER = "deit_base_distilled_patch16_224"  # timm id of StyleGAN-XL's class predictor


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
    sampling.save_image(paths[0], np.asarray(target, np.uint8))
    sampling.save_image(paths[1], proj)
    np.savez(paths[2], w=w, **projector.noise_to_npz(out["noise"]))
    np.savez(paths[3], dist=out["dist"], reg=out["reg"], w=out["w"])
    if save_frames:
        os.makedirs(os.path.join(outdir, "frames"), exist_ok=True)
        for i in range(0, len(out["w"]), save_frames):
            img = writers.to_uint8(projector.synthesize(G, variables, out["w"][i], out["noise"]))
            paths.append(os.path.join(outdir, "frames", f"step{i:04d}.png"))
            sampling.save_image(paths[-1], np.concatenate([target, img[0]], axis=1))
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
    parser.add_argument("--classifier", help="StyleGAN-XL: DeiT-base weights (timm "
                        f"{CLASSIFIER}, .safetensors / .npz) to infer the target's class")
    parser.add_argument("--pti", action="store_true", help="then Pivotal Tuning Inversion")
    parser.add_argument("--pti_steps", type=int, default=pti.PTIConfig.num_steps)
    parser.add_argument("--pti_learning_rate", type=float, default=pti.PTIConfig.learning_rate)
    parser.add_argument("--seed", type=int, default=SEED, help="noise init / latent noise key")
    parser.add_argument("--log_every", type=int, default=100, help="progress line every N steps")
    parser.add_argument("--save_frames", type=int, default=0,
                        help="write frames/step*.png every N steps (0: off)")
    return parser


def load_classifier(path):
    """fn(images [N, 224, 224, 3]) -> logits [N, 1000] of DeiT-base from a local file."""
    if not path:
        raise ValueError(f"--classifier: a conditional StyleGAN-XL generator needs the target's "
                         f"class: give --class, or the weights of timm {CLASSIFIER} "
                         "(.safetensors / .npz) to infer it")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--classifier: {path} not found (weights of timm {CLASSIFIER})")
    from gan_zoo.convert import vit

    module, variables = vit.load_vit(path, CLASSIFIER)
    return jax.jit(lambda x: module.apply(variables, x)[0])


def start_labels(args, G, target, classifier_fn=None, num_samples: int = 10000):
    """Labels of the w statistics: None (unconditional G), one-hot [c_dim] (--class), or for
    StyleGAN-XL [num_samples, c_dim] drawn from the classifier's softmax on the target."""
    if G.c_dim == 0 or args.class_idx is not None or not is_stylegan_xl(G):
        c = sampling.class_labels(G, args.class_idx, 1)
        return None if c is None else c[0]
    probs = projector.class_probs(classifier_fn or load_classifier(args.classifier), target)
    if len(probs) != G.c_dim:
        raise ValueError(f"--classifier: predicts {len(probs)} classes; the generator has "
                         f"c_dim={G.c_dim} (give --class instead)")
    print(f"main class {int(probs.argmax())}, confidence {probs.max():.4f}", flush=True)
    return projector.sample_classes(probs, num_samples)


def is_stylegan_xl(G) -> bool:
    from gan_zoo.models import stylegan_xl

    return isinstance(G, stylegan_xl.Generator)


def projector_config(args, G) -> projector.ProjectorConfig:
    """The official constants with the flags; StyleGAN-XL's variant for its generators."""
    kw = dict(num_steps=args.num_steps, w_avg_samples=args.w_avg_samples,
              initial_learning_rate=args.initial_learning_rate)
    if is_stylegan_xl(G):
        return projector.xl_config(**kw)
    return projector.ProjectorConfig(**kw, regularize_noise_weight=args.regularize_noise_weight,
                                     noise_pyramid_gain=args.noise_pyramid_gain)


def run(args, classifier_fn=None) -> list:
    """Loads the network and target, projects (then --pti), writes the outputs; returns the
    written paths. classifier_fn overrides --classifier (tests)."""
    if args.num_steps < 1 or args.w_avg_samples < 1:
        raise ValueError("--num_steps / --w_avg_samples: expected positive integers")
    if args.pti and args.pti_steps < 1:
        raise ValueError(f"--pti_steps: expected a positive integer, got {args.pti_steps}")
    feature_fn = lpips_feature_fn(args.lpips) if args.lpips else projector.pixel_pyramid_features
    G, variables = generate.network_from_args(args)
    if not generate.is_stylegan(G):
        raise ValueError(f"--network: projection needs a StyleGAN2/3 W space; the network is a "
                         f"{type(G).__name__} from {G.__module__}")
    target = load_target(args.target, G.img_resolution, G.img_channels)
    cfg = projector_config(args, G)
    c = start_labels(args, G, target, classifier_fn, cfg.w_avg_samples)
    w_avg, w_std = projector.w_stats(G, variables, cfg.w_avg_samples, c=c)
    log = lambda step, dist, reg: print(f"step {step + 1:5d}/{cfg.num_steps}: dist {dist:.6g} "
                                        f"noise_reg {reg:.3g}", flush=True)
    out = projector.project(G, variables, target, feature_fn, jax.random.PRNGKey(args.seed), cfg,
                            w_avg, w_std, chunk=args.log_every, log=log)
    paths = write_outputs(args.outdir, G, variables, target, out, args.save_frames)
    if args.pti:
        paths += pti.run(args, G, variables, target, out["w"][-1], out["noise"], feature_fn)
    return paths


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
