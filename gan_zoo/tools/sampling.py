"""Helpers shared by the sampling tools (gan_zoo.tools.generate and its runners edit,
generate_biggan, generate_text; project and pti too): seed ranges, latents (z of a seed as in the
official gen_images.py, class labels, truncated mapping, --latents files), batched synthesis, and
writing images, grids and interpolation frames. The CLI and its dispatch stay in generate, which
imports this module; this module imports no other gan_zoo.tools module, so the runners can use it
without an import cycle (STYLE.md "Layering", issue #17 item 8).
"""

import functools
import os
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

MAX_SEED = 2**32 - 1  # np.random.RandomState limit


# ----------------------------------------------------------------------------------------------
# Flag parsing.

def parse_range(flag: str, text: str, lo: int = 0, hi: int = MAX_SEED) -> list:
    """'0-7,12' -> [0, 1, ..., 7, 12]; ValueError naming `flag` for a bad token or range."""
    out = []
    for tok in (text or "").split(","):
        tok = tok.strip()
        a, sep, b = tok.partition("-")
        try:
            first, last = int(a), int(b) if sep else int(a)
        except ValueError:
            raise ValueError(f"{flag}: expected integers or ranges like '0-7,12', got {tok!r} "
                             f"in {text!r}") from None
        if first > last:
            raise ValueError(f"{flag}: empty range {tok!r} (start > end)")
        if first < lo or last > hi:
            raise ValueError(f"{flag}: {tok!r} outside [{lo}, {hi}]")
        out.extend(range(first, last + 1))
    if not out:
        raise ValueError(f"{flag}: expected at least one value, got {text!r}")
    return out


# ----------------------------------------------------------------------------------------------
# Latents and synthesis.

def seed_z(seeds, z_dim: int) -> np.ndarray:
    """[len(seeds), z_dim]: RandomState(seed).randn(1, z_dim) per seed (official)."""
    return np.concatenate([np.random.RandomState(s).randn(1, z_dim) for s in seeds]).astype(
        np.float32)


def class_labels(G, class_idx, n: int):
    """One-hot [n, c_dim] for a conditional G, None otherwise."""
    if G.c_dim == 0:
        if class_idx is not None:
            print("warning: --class ignored, the network is unconditional", file=sys.stderr)
        return None
    if class_idx is None or not 0 <= class_idx < G.c_dim:
        raise ValueError(f"--class: the network is conditional; give a class in [0, {G.c_dim})")
    return jnp.asarray(np.eye(G.c_dim, dtype=np.float32)[[class_idx] * n])


def map_z(G, variables, z, c, psi: float = 1.0, cutoff=None):
    """f(z, c) with truncation -> ws [N, num_ws, w_dim]."""
    if cutoff is not None and not 0 <= cutoff <= G.num_ws:
        raise ValueError(f"--trunc_cutoff: expected 0..{G.num_ws} (num_ws), got {cutoff}")
    return G.apply(variables, jnp.asarray(z), c, psi=psi, cutoff=cutoff, method="map")


@functools.lru_cache(maxsize=4)
def _synthesis_fn(G, noise_mode: str):
    """Jitted (variables, ws, key) -> img, one per network and noise mode (reused by calls)."""
    return jax.jit(lambda v, w, key: G.apply(v, w, noise_mode=noise_mode, rngs={"noise": key},
                                             method="synthesize")[0])


def synthesize(G, variables, ws, noise_mode: str = "const", seed: int = 0, batch: int = 8):
    """g(ws) in batches (padded to one shape: one compile) -> float [N, H, W, C] in ~[-1, 1]."""
    fn = functools.partial(_synthesis_fn(G, noise_mode), variables)
    ws = np.asarray(ws, np.float32)
    batch = min(batch, len(ws))
    out = []
    for i in range(0, len(ws), batch):
        w = ws[i:i + batch]
        pad = np.concatenate([w, np.repeat(w[-1:], batch - len(w), axis=0)])
        img = fn(jnp.asarray(pad), jax.random.fold_in(jax.random.PRNGKey(seed), i))
        out.append(np.asarray(img)[:len(w)])
    return np.concatenate(out)


def load_latents(path, G, space: str = "auto") -> tuple:
    """('z' [N, z_dim] | 'w' [N, num_ws, w_dim], array) from .npy or .npz ('z' or 'w' key)."""
    p = pathlib.Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--latents: {p} not found (.npy or .npz with key 'z' or 'w')")
    if p.suffix == ".npz":
        with np.load(p) as f:
            keys = [k for k in ("w", "z") if k in f.files]
            if not keys:
                raise ValueError(f"--latents: {p} has keys {f.files}; expected 'z' or 'w'")
            x, space = f[keys[0]], keys[0] if space == "auto" else space
    else:
        x = np.load(p)
    x = np.asarray(x, np.float32)
    if space == "auto":
        space = "w" if x.ndim == 3 else "z"
    if space == "z" and x.ndim == 2 and x.shape[1] == G.z_dim:
        return "z", x
    if space == "w" and x.ndim == 2 and x.shape[1] == G.w_dim:
        return "w", np.repeat(x[:, None], G.num_ws, axis=1)
    if space == "w" and x.shape[1:] == (G.num_ws, G.w_dim):
        return "w", x
    raise ValueError(f"--latents: {p} has shape {list(x.shape)}; expected z [N, {G.z_dim}] or "
                     f"w [N, {G.num_ws}, {G.w_dim}] / [N, {G.w_dim}] (--latent_space={space})")


def labels_from_npz(path, n_classes: int, n: int):
    """Class ids [n] from the `c` (one-hot [n, n_classes]) or `y` ([n]) of a --latents .npz,
    or None when it has neither."""
    if not path or pathlib.Path(path).suffix != ".npz":
        return None
    with np.load(path) as f:
        if "c" in f.files:
            c = np.asarray(f["c"])
            if c.shape != (n, n_classes):
                raise ValueError(f"--latents: {path}: 'c' has shape {list(c.shape)}; expected "
                                 f"[{n}, {n_classes}] (one-hot labels of the {n} latents)")
            return np.argmax(c, axis=1).astype(np.int32)
        if "y" not in f.files:
            return None
        y = np.asarray(f["y"])
    if y.shape != (n,) or n_classes == 0 or y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"--latents: {path}: 'y' must be {n} class ids in [0, {n_classes}), "
                         f"got shape {list(y.shape)}")
    return y.astype(np.int32)


def latents_from_args(args, G, variables, n_min: int = 1) -> tuple:
    """(names, ws [N, num_ws, w_dim]) from --seeds or --latents with truncation and --class."""
    if bool(args.seeds) == bool(args.latents):
        raise ValueError("--seeds / --latents: give exactly one")
    if args.seeds:
        seeds = parse_range("--seeds", args.seeds)
        kind, x, names = "z", seed_z(seeds, G.z_dim), [f"seed{s:04d}" for s in seeds]
    else:
        kind, x = load_latents(args.latents, G, args.latent_space)
        names = [f"latent{i:04d}" for i in range(len(x))]
    if len(x) < n_min:
        raise ValueError(f"--seeds / --latents: this mode needs at least {n_min} latents")
    if kind == "w":
        if args.trunc != 1:
            raise ValueError("--trunc: w latents are synthesised as given; truncate z instead")
        return names, x
    y = labels_from_npz(args.latents, G.c_dim, len(x))
    c = class_labels(G, args.class_idx, len(x)) if y is None else \
        jnp.asarray(np.eye(G.c_dim, dtype=np.float32)[y])
    return names, np.asarray(map_z(G, variables, x, c, args.trunc, args.trunc_cutoff))


# ----------------------------------------------------------------------------------------------
# Writing images and frames; style mixing and interpolation in W.

def save_image(path, image_uint8) -> None:
    """Writes uint8 [H, W, C] (C = 1 or 3) as an image file."""
    from PIL import Image

    img = image_uint8[..., 0] if image_uint8.shape[-1] == 1 else image_uint8
    Image.fromarray(img).save(path)


def mix_ws(ws_rows, ws_cols, styles) -> np.ndarray:
    """[R, C, num_ws, w_dim]: row w with the `styles` slots copied from the column w."""
    out = np.repeat(np.asarray(ws_rows)[:, None], len(ws_cols), axis=1)
    out[:, :, styles] = np.asarray(ws_cols)[None][:, :, styles]
    return out


def interp_ws(ws, frames: int) -> np.ndarray:
    """Linear interpolation in W between consecutive ws, `frames` per segment (endpoints
    included, shared between segments): [(K - 1)(frames - 1) + 1, num_ws, w_dim]."""
    t = np.linspace(0.0, 1.0, frames, dtype=np.float32)[:, None, None]
    segs = [(1.0 - t) * ws[k] + t * ws[k + 1] for k in range(len(ws) - 1)]  # exact endpoints
    return np.concatenate([segs[0]] + [s[1:] for s in segs[1:]])


def write_images(args, names, images) -> list:
    """<outdir>/<name>.png per float image [N, H, W, C] (unless --no_singles) and grid.png."""
    from gan_zoo.train import writers

    paths = []
    if not args.no_singles:
        for name, img in zip(names, writers.to_uint8(images)):
            paths.append(os.path.join(args.outdir, f"{name}.png"))
            save_image(paths[-1], img)
    if args.grid or args.no_singles:
        paths.append(os.path.join(args.outdir, "grid.png"))
        save_image(paths[-1], writers.image_grid(images, args.grid_cols))
    return paths


def check_frames(frames: int) -> None:
    if frames < 2:
        raise ValueError(f"--frames: expected >= 2 frames per segment, got {frames}")


def write_frames(args, images) -> list:
    """<outdir>/frame*.png per float image [N, H, W, C] (unless --no_singles) and strip.png."""
    from gan_zoo.train import writers

    frames = writers.to_uint8(images)
    paths = []
    if not args.no_singles:
        for i, img in enumerate(frames):
            paths.append(os.path.join(args.outdir, f"frame{i:04d}.png"))
            save_image(paths[-1], img)
    paths.append(os.path.join(args.outdir, "strip.png"))
    save_image(paths[-1], np.concatenate(list(frames), axis=1))
    return paths
