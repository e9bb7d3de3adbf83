"""BigGAN / BigGAN-deep modes of gan_zoo.tools.generate: class-conditional images and
interpolations in z (BigGAN has no W space, so no style mixing).

z of seed s is np.random.RandomState(s).randn(1, dim_z), as for StyleGAN; with --z_trunc=τ > 0 it
is drawn from the same RandomState as N(0, I) truncated to |z_i| <= τ (BigGAN §3.1, the
truncation trick: values outside the threshold are resampled, i.e. a truncated normal). Labels
come from --class or from the `y` / `c` of a --latents .npz.
"""

import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo.tools import sampling


def seed_z(seeds, dim_z: int, threshold: float = 0.0) -> np.ndarray:
    """[len(seeds), dim_z] float32; threshold τ > 0: N(0, I) truncated to [-τ, τ] per seed."""
    if threshold <= 0:
        return sampling.seed_z(seeds, dim_z)
    from scipy.stats import truncnorm

    return np.concatenate([
        truncnorm.rvs(-threshold, threshold, size=(1, dim_z),
                      random_state=np.random.RandomState(s)) for s in seeds]).astype(np.float32)


def latents(args, G, n_min: int = 1) -> tuple:
    """(names, z [N, dim_z], class ids [N]) from --seeds / --latents and --class."""
    if bool(args.seeds) == bool(args.latents):
        raise ValueError("--seeds / --latents: give exactly one")
    if args.trunc != 1:
        raise ValueError("--trunc: ψ is a StyleGAN W-space truncation; BigGAN truncates z with "
                         "--z_trunc=τ")
    if args.seeds:
        seeds = sampling.parse_range("--seeds", args.seeds)
        z, names = seed_z(seeds, G.dim_z, args.z_trunc), [f"seed{s:04d}" for s in seeds]
    else:
        _, z = sampling.load_latents(args.latents, _ZOnly(G.dim_z), "z")
        names = [f"latent{i:04d}" for i in range(len(z))]
    if len(z) < n_min:
        raise ValueError(f"--seeds / --latents: this mode needs at least {n_min} latents")
    y = sampling.labels_from_npz(args.latents, G.n_classes, len(z))
    if y is None:
        if args.class_idx is None or not 0 <= args.class_idx < G.n_classes:
            raise ValueError(f"--class: BigGAN is class-conditional; give a class in "
                             f"[0, {G.n_classes})")
        y = np.full((len(z),), args.class_idx, np.int32)
    return names, z, y


class _ZOnly:
    """The fields sampling.load_latents reads, for a G whose only latent is z."""

    def __init__(self, dim_z: int):
        self.z_dim, self.w_dim, self.num_ws = dim_z, -1, -1


def render(G, variables, z, y, batch: int = 8) -> np.ndarray:
    """G(z, y) in eval mode (stored BN statistics) in padded batches -> float [N, H, W, C]."""
    fn = jax.jit(lambda z, y: G.apply(variables, z, y, train=False)[0])
    batch = min(batch, len(z))
    out = []
    for i in range(0, len(z), batch):
        zz, yy = z[i:i + batch], y[i:i + batch]
        pad = batch - len(zz)
        img = fn(jnp.asarray(np.concatenate([zz, np.repeat(zz[-1:], pad, 0)])),
                 jnp.asarray(np.concatenate([yy, np.repeat(yy[-1:], pad, 0)])))
        out.append(np.asarray(img, np.float32)[:len(zz)])
    return np.concatenate(out)


def run_images(args, G, variables) -> list:
    names, z, y = latents(args, G)
    return sampling.write_images(args, names, render(G, variables, z, y, args.batch_size))


def run_interp(args, G, variables) -> list:
    """Lerp in z between consecutive latents, each segment with its start's class."""
    sampling.check_frames(args.frames)
    _, z, y = latents(args, G, n_min=2)
    zs = sampling.interp_ws(z[:, None], args.frames)[:, 0]  # [F, dim_z]
    steps = args.frames - 1
    ys = np.concatenate([np.repeat(y[:-1], steps), y[-1:]])  # segment k: class of latent k
    return sampling.write_frames(args, render(G, variables, zs, ys, args.batch_size))


def run_mix(args, G, variables) -> list:
    raise ValueError(f"--mode=mix: style mixing needs a StyleGAN W space; {type(G).__name__} "
                     "(BigGAN) has none (use --mode=images or interp)")


RUNNERS = {"images": run_images, "mix": run_mix, "interp": run_interp}
