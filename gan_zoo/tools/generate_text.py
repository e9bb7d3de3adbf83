"""Text-to-image sampling from a StyleGAN-T training workdir (`generate --prompt`).

    python -m gan_zoo.tools.generate --workdir=/tmp/t --config=configs/stylegan_t.py:digits_text \
        --prompt="a handwritten digit seven" --prompt="a handwritten digit two" --seeds=0-3 \
        --trunc=0.7 --grid --outdir=out
    python -m gan_zoo.tools.generate ... --mode=interp --prompt=A --prompt=B --seeds=5 --frames=8
    python -m gan_zoo.tools.generate ... --prompt="a cat" --style=", oil painting" --outdir=out

Images: one PNG per (prompt, seed), `p<i>_seed<s>.png`, and with --grid a grid with one row per
prompt and one column per seed. z of seed s is RandomState(s).randn(1, z_dim) (as gen_images.py).
`--trunc` is ψ of StyleGAN-T's truncation, which pulls only the z part f(z) of w = [f(z), c]
toward its EMA f̄ (spec stylegan_xl_and_t.md §2.2; Fig. 5 sweeps ψ from 1 to 0). `--style` is
appended to every prompt before tokenisation. Interp: prompt interpolation at a fixed z (one seed):
G's text input c moves between consecutive prompts' embeddings along the great circle (slerp:
every c the generator was trained on is L2-normalised, spec §2.3), `--frames` per segment.
Prompts are encoded with the run's EMA text encoder (the secondary phase may have trained it).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np


def add_prompt_flags(parser) -> None:
    g = parser.add_argument_group("text-to-image (StyleGAN-T --workdir + --config)")
    g.add_argument("--prompt", action="append", default=None,
                   help="a text prompt (repeat the flag for several)")
    g.add_argument("--style", default="", help="suffix appended to every prompt, e.g. ', photo'")


def prompts_from_args(args) -> list:
    """The --prompt texts with --style appended; ValueError for an empty prompt."""
    prompts = [p + args.style for p in args.prompt]
    if any(not p.strip() for p in args.prompt):
        raise ValueError(f"--prompt: empty prompt in {args.prompt!r}")
    return prompts


def load_run(args):
    """(recipe, state) of the latest checkpoint of --workdir with --config (a StyleGAN-T run)."""
    from gan_zoo.config_file import load_config_file
    from gan_zoo.train import sharding
    from gan_zoo.train.loop import restore_run

    if not args.workdir or not args.config:
        raise ValueError("--prompt: needs --workdir and --config of a StyleGAN-T training run")
    config = load_config_file(args.config)
    if config.recipe != "stylegan_t":
        raise ValueError(f"--prompt: --config {args.config} has recipe {config.recipe!r}; text "
                         "prompts need a 'stylegan_t' run")
    recipe, state, _ = restore_run(config, args.workdir, sharding.make_mesh(config.mesh))
    return recipe, state


def slerp(a, b, t):
    """Great-circle interpolation between unit vectors a, b [E] at t [T] -> [T, E]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    omega = np.arccos(np.clip(np.dot(a, b), -1.0, 1.0))
    t = np.asarray(t, np.float64)[:, None]
    if omega < 1e-6:  # (nearly) the same prompt: a straight line is the same path
        return ((1 - t) * a + t * b).astype(np.float32)
    out = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)
    return out.astype(np.float32)


def interp_c(cs, frames: int) -> np.ndarray:
    """Slerp between consecutive embeddings cs [K, E], `frames` per segment (shared endpoints):
    [(K - 1)(frames - 1) + 1, E]."""
    t = np.linspace(0.0, 1.0, frames)
    segs = [slerp(cs[k], cs[k + 1], t) for k in range(len(cs) - 1)]
    return np.concatenate([segs[0]] + [s[1:] for s in segs[1:]])


def render(recipe, state, z, c, psi: float, noise_mode: str, noise_seed: int, batch: int):
    """EMA G(z [N, z_dim], c [N, E]) in batches (padded: one compile) -> float [N, R, R, 3]."""
    TG = recipe.networks["g"]
    variables = {"params": state.ema_params, **state.collections["g"]}
    fn = jax.jit(lambda v, z, c, key: TG.apply(v, z, c, psi=psi, noise_mode=noise_mode,
                                               rngs={"noise": key})[0])
    batch, out = min(batch, len(z)), []
    for i in range(0, len(z), batch):
        zi, ci = z[i:i + batch], c[i:i + batch]
        pad = batch - len(zi)
        zi, ci = (np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]) for x in (zi, ci))
        key = jax.random.fold_in(jax.random.PRNGKey(noise_seed), i)
        out.append(np.asarray(fn(variables, jnp.asarray(zi), jnp.asarray(ci), key))[:batch - pad])
    return np.concatenate(out)


def run(args) -> list:
    """generate --prompt: images (prompts x seeds) or a prompt interpolation; written paths."""
    from gan_zoo.recipes import stylegan_t
    from gan_zoo.tools import sampling

    if args.mode not in ("images", "interp"):
        raise ValueError(f"--mode={args.mode}: --prompt supports images and interp")
    prompts = prompts_from_args(args)
    seeds = sampling.parse_range("--seeds", args.seeds or "0")
    recipe, state = load_run(args)
    z_dim = recipe.networks["g"].G.z_dim
    cs = np.asarray(stylegan_t.encode_prompts(recipe, state, prompts), np.float32)  # [P, E]
    if args.mode == "interp":
        sampling.check_frames(args.frames)
        if len(prompts) < 2 or len(seeds) != 1:
            raise ValueError("--mode=interp --prompt: give >= 2 --prompt and exactly one seed "
                             f"(z is fixed), got {len(prompts)} prompts, seeds {seeds}")
        c = interp_c(cs, args.frames)
        z = np.repeat(sampling.seed_z(seeds, z_dim), len(c), axis=0)
        images = render(recipe, state, z, c, args.trunc, args.noise_mode, args.noise_seed,
                        args.batch_size)
        return sampling.write_frames(args, images)
    z = np.tile(sampling.seed_z(seeds, z_dim), (len(prompts), 1))  # row-major: prompt, seed
    c = np.repeat(cs, len(seeds), axis=0)
    images = render(recipe, state, z, c, args.trunc, args.noise_mode, args.noise_seed,
                    args.batch_size)
    names = [f"p{i}_seed{s}" for i in range(len(prompts)) for s in seeds]
    if args.grid and not args.grid_cols:
        args.grid_cols = len(seeds)
    paths = sampling.write_images(args, names, images)
    with open(os.path.join(args.outdir, "prompts.txt"), "w") as f:
        f.write("".join(f"p{i}\t{p}\n" for i, p in enumerate(prompts)))
    return paths
