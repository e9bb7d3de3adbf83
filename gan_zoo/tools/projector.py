"""The StyleGAN2 projector as pure functions: find the w (one w shared by all layers) and the noise
maps that reproduce a target image. StyleGAN2 §5, App. D (spec: shared/spec/stylegan2_and_progan.md
§A10; code: NVlabs/stylegan3 `projector.py`).

    cfg = ProjectorConfig()                                   # the official constants
    w_avg, w_std = w_stats(G, variables)                      # 10k samples of f(z)
    out = project(G, variables, target, feature_fn, key, cfg, w_avg, w_std)
    out["w"]      # [num_steps, w_dim], w after each step (the last is the projection)
    out["noise"]  # {flat buffer path: [R, R]} optimised noise maps (noise_const)

StyleGAN3 has no noise inputs: its projection optimises w alone (`out["noise"]` is {} and the
noise regulariser is 0).

StyleGAN-XL (SG-XL §4.2, spec stylegan_xl_and_t.md §1.9; code: autonomousvision/stylegan_xl
`run_inversion.py`) uses the same schedule and distance with `xl_config()` (no latent noise, no
noise regulariser). A conditional G's start is the mean of f(z, c) over classes drawn from a
classifier's softmax of the target (`classifier_input`, `class_probs`, `sample_classes`, then
`w_stats(..., c=[S, c_dim])`).

The distance is pluggable: `feature_fn(images [N, H, W, C] in [0, 255]) -> [N, F]`, and the image
loss is the squared L2 distance of the target's and the synthesis' features (LPIPS-VGG16 returns
features whose squared distance is LPIPS, as the official `vgg16.pt` with return_lpips=True).
`pixel_pyramid_features` is the fallback when no LPIPS network is at hand.
"""

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

# The StyleGAN2 noise buffers (NOISE_LEAF) become optimisation variables; the helpers that take
# them out of a G's variables and put them back live with the layers that own them.
from gan_zoo.models.stylegan2_layers import NOISE_LEAF, merge_noise, split_noise  # noqa: F401


@dataclasses.dataclass(frozen=True)
class ProjectorConfig:
    """Projector constants; defaults are the official ones (spec §A10, `projector.py`)."""

    num_steps: int = 1000  # Adam iterations
    w_avg_samples: int = 10000  # samples of f(z) for mu_w and sigma_w
    initial_learning_rate: float = 0.1  # lambda_max
    initial_noise_factor: float = 0.05  # latent noise std at t=0, in units of sigma_w
    lr_rampdown_length: float = 0.25  # cosine ramp-down over the last quarter
    lr_rampup_length: float = 0.05  # linear ramp-up over the first 5%
    noise_ramp_length: float = 0.75  # latent noise falls to 0 over the first 3/4
    regularize_noise_weight: float = 1e5  # alpha
    noise_pyramid_gain: float = 1.0  # x per 2x2-mean level: 1 = official code, 2 = paper (§A10 ⚠)
    max_feature_resolution: int = 256  # box-downsample larger images before the distance


def xl_config(**overrides) -> ProjectorConfig:
    """StyleGAN-XL's projector (run_inversion.py `project`): the StyleGAN2 lr schedule and
    LPIPS distance, but no latent noise and no noise regulariser (SG3 has no noise inputs)."""
    return ProjectorConfig(**{"initial_noise_factor": 0.0, "regularize_noise_weight": 0.0,
                              **overrides})


# ----------------------------------------------------------------------------------------------
# Schedules.

def learning_rate(step, cfg: ProjectorConfig):
    """lr = lambda_max (0.5 - 0.5 cos(pi min(1, (1 - t) / 0.25))) min(1, t / 0.05), t = i / T."""
    t = step / cfg.num_steps
    ramp = jnp.minimum(1.0, (1.0 - t) / cfg.lr_rampdown_length)
    ramp = 0.5 - 0.5 * jnp.cos(ramp * jnp.pi)
    ramp = ramp * jnp.minimum(1.0, t / cfg.lr_rampup_length)
    return cfg.initial_learning_rate * ramp


def latent_noise_std(step, w_std, cfg: ProjectorConfig):
    """std of the latent noise: 0.05 sigma_w max(0, 1 - t / 0.75)^2 (spec §A10)."""
    t = step / cfg.num_steps
    return w_std * cfg.initial_noise_factor * jnp.maximum(0.0, 1.0 - t / cfg.noise_ramp_length) ** 2


# ----------------------------------------------------------------------------------------------
# W statistics.

def w_stats(G, variables, num_samples: int = 10000, c=None, seed: int = 123,
            batch: int = 2000):
    """(mu_w [1, 1, w_dim], sigma_w) of f(z), z ~ RandomState(seed).randn like the official code.

    sigma_w^2 = E ||f(z) - mu_w||^2 (the mean squared distance, not a per-coordinate variance).
    c: [c_dim] one label for every sample, [num_samples, c_dim] one per sample (StyleGAN-XL:
    classes drawn from the classifier's softmax), or None (unconditional G).
    """
    z = np.random.RandomState(seed).randn(num_samples, G.z_dim).astype(np.float32)
    if c is not None:
        c = np.asarray(c, np.float32)
        if c.shape not in ((G.c_dim,), (num_samples, G.c_dim)):
            raise ValueError(f"w_stats: labels of shape {list(c.shape)}; expected [{G.c_dim}] "
                             f"or [{num_samples}, {G.c_dim}]")
        c = np.broadcast_to(c, (num_samples, G.c_dim))
    fn = jax.jit(lambda zz, cc: G.apply(variables, zz, cc, method="map")[:, :1])
    ws = []
    for i in range(0, num_samples, batch):
        cb = None if c is None else jnp.asarray(c[i:i + batch])
        ws.append(np.asarray(fn(jnp.asarray(z[i:i + batch]), cb), np.float64))
    ws = np.concatenate(ws)  # [S, 1, w_dim]
    w_avg = ws.mean(axis=0, keepdims=True)  # [1, 1, w_dim]
    w_std = float(np.sqrt(np.sum((ws - w_avg) ** 2) / num_samples))
    return w_avg.astype(np.float32), w_std


# ----------------------------------------------------------------------------------------------
# Class of a conditional G (StyleGAN-XL).

CLASSIFIER_SIZE = 224  # DeiT-base input side
CLASS_SEED = 42  # run_inversion.py seeds its global RNGs with --seed (default 42)


def classifier_input(target) -> np.ndarray:
    """uint8/float [H, W, 3] in [0, 255] -> [1, 224, 224, 3] in [-1, 1] as run_inversion.py
    feeds DeiT: x / 127.5 - 1, torch F.interpolate's default 'nearest' resize (src index =
    floor(dst * H / 224)), and no ImageNet mean/std normalisation (the official code's input)."""
    x = np.asarray(target, np.float32) / 127.5 - 1.0
    h, w = x.shape[:2]
    rows = np.minimum(np.floor(np.arange(CLASSIFIER_SIZE) * (h / CLASSIFIER_SIZE)), h - 1)
    cols = np.minimum(np.floor(np.arange(CLASSIFIER_SIZE) * (w / CLASSIFIER_SIZE)), w - 1)
    return x[rows.astype(int)][:, cols.astype(int)][None]


def class_probs(classifier_fn: Callable, target) -> np.ndarray:
    """softmax(classifier_fn(classifier_input(target)))[0] -> [num_classes] (float64)."""
    logits = np.asarray(classifier_fn(jnp.asarray(classifier_input(target))), np.float64)[0]
    e = np.exp(logits - logits.max())
    return e / e.sum()


def sample_classes(probs, num_samples: int, seed: int = CLASS_SEED) -> np.ndarray:
    """One-hot [num_samples, C] of classes drawn from `probs` with replacement (official:
    torch.multinomial(probs, w_avg_samples, replacement=True); here a numpy RandomState)."""
    p = np.asarray(probs, np.float64)
    idx = np.random.RandomState(seed).choice(len(p), size=num_samples, p=p / p.sum())
    return np.eye(len(p), dtype=np.float32)[idx]


# ----------------------------------------------------------------------------------------------
# Noise maps.

def noise_regularizer(noise: dict, gain: float = 1.0):
    """Multi-scale autocorrelation penalty. StyleGAN2 App. D:
    sum over maps and pyramid levels of ((1/r^2) sum n(x,y) n(x-1,y))^2 + (... n(x,y-1))^2,
    with wrap-around shifts; each map is reduced by 2x2 means (times `gain`) down to 8x8."""
    reg = jnp.zeros((), jnp.float32)  # stays 0 without noise maps (StyleGAN3)
    for n in noise.values():  # [R, R]
        while True:
            reg += jnp.mean(n * jnp.roll(n, 1, axis=1)) ** 2
            reg += jnp.mean(n * jnp.roll(n, 1, axis=0)) ** 2
            if n.shape[0] <= 8:
                break
            r = n.shape[0] // 2
            n = n.reshape(r, 2, r, 2).mean(axis=(1, 3)) * gain
    return reg


def noise_to_npz(noise: dict) -> dict:
    """{('synthesis', 'b8', 'conv0', 'noise_const'): x} -> {'synthesis.b8.conv0.noise_const': x}
    (the torch buffer names, as the projector writes them)."""
    return {".".join(p): np.asarray(v) for p, v in noise.items()}


def noise_from_npz(arrays: dict, variables, where: str = "noise maps") -> dict:
    """Inverse of noise_to_npz for the `*.noise_const` entries of `arrays`, checked against the
    network's own noise buffers (ValueError naming `where` and the entry on a mismatch)."""
    own, _ = split_noise(variables)
    out = {}
    for name in sorted(k for k in arrays if k.endswith("." + NOISE_LEAF)):
        path, x = tuple(name.split(".")), np.asarray(arrays[name], np.float32)
        if path not in own:
            names = sorted(noise_to_npz(own)) or "none: it has no noise inputs"
            raise ValueError(f"{where}: {name!r} is not a noise buffer of this network; expected "
                             f"one of {names}")
        if x.shape != tuple(own[path].shape):
            raise ValueError(f"{where}: {name!r} has shape {list(x.shape)}; expected "
                             f"{list(own[path].shape)}")
        out[path] = x
    return out


def normalize_noise(noise: dict) -> dict:
    """Each map to zero mean and unit variance (after every step, StyleGAN2 App. D)."""
    out = {}
    for k, n in noise.items():
        n = n - jnp.mean(n)
        out[k] = n * jax.lax.rsqrt(jnp.mean(jnp.square(n)))
    return out


# ----------------------------------------------------------------------------------------------
# Distances.

def box_downsample(images, max_resolution: int = 256):
    """[N, H, W, C] -> box-filtered to at most max_resolution (integer factors, like area)."""
    n, h, w, c = images.shape
    f = max(1, h // max_resolution)
    if f == 1:
        return images
    if h % f or w % f:
        raise ValueError(f"box_downsample: {h}x{w} is not a multiple of the factor {f}")
    return images.reshape(n, h // f, f, w // f, f, c).mean(axis=(2, 4))


def pixel_pyramid_features(images, min_resolution: int = 8):
    """Fallback distance features: the image in [-1, 1] and its 2x2-mean pyramid down to
    min_resolution, each level scaled by 1/sqrt(H W C) so the squared feature distance is
    sum over levels of the per-level MSE. images: [N, H, W, C] in [0, 255] -> [N, F]."""
    x = images / 127.5 - 1.0
    feats = []
    while True:
        n, h, w, c = x.shape
        feats.append(x.reshape(n, -1) / np.sqrt(h * w * c))
        if h <= min_resolution or h % 2 or w % 2:
            break
        x = x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    return jnp.concatenate(feats, axis=1)


def to_feature_range(images):
    """Generator output in [-1, 1] -> [0, 255] (the official projector's scaling)."""
    return (images + 1.0) * (255.0 / 2.0)


# ----------------------------------------------------------------------------------------------
# Optimisation.

def _synthesize(G, rest, noise, w, num_ws: int):
    """g(w broadcast to every layer; noise maps as const buffers) -> img [1, H, W, C]."""
    ws = jnp.broadcast_to(w, (w.shape[0], num_ws, w.shape[-1]))
    img, _ = G.apply(merge_noise(rest, noise), ws, noise_mode="const", method="synthesize")
    return img


def make_loss_fn(G, rest, feature_fn: Callable, target_features, cfg: ProjectorConfig):
    """loss((w, noise), w_noise) -> (dist + alpha reg, (dist, reg))."""

    def loss_fn(opt_vars, w_noise):
        w, noise = opt_vars
        img = _synthesize(G, rest, noise, w + w_noise, G.num_ws)
        feats = feature_fn(box_downsample(to_feature_range(img), cfg.max_feature_resolution))
        dist = jnp.sum(jnp.square(target_features - feats))
        reg = noise_regularizer(noise, cfg.noise_pyramid_gain)
        return dist + cfg.regularize_noise_weight * reg, (dist, reg)
    return loss_fn


def make_step_fn(loss_fn, w_std, key, cfg: ProjectorConfig):
    """One projector iteration (carry, step) -> (carry, (w, dist, reg)); carry = (w, noise, opt)."""
    adam = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8)  # torch / TF Adam defaults

    def step_fn(carry, step):
        w, noise, opt_state = carry
        std = latent_noise_std(step, w_std, cfg)
        w_noise = jax.random.normal(jax.random.fold_in(key, step.astype(jnp.int32)), w.shape) * std
        grads, (dist, reg) = jax.grad(loss_fn, has_aux=True)((w, noise), w_noise)
        updates, opt_state = adam.update(grads, opt_state)
        lr = learning_rate(step, cfg)
        w, noise = jax.tree.map(lambda p, u: p - lr * u, (w, noise), updates)
        noise = normalize_noise(noise)
        return (w, noise, opt_state), (w[0, 0], dist, reg)
    return step_fn, adam


def project(G, variables, target, feature_fn: Callable, key, cfg: ProjectorConfig = None,
            w_avg=None, w_std=None, chunk: int = 0, log: Callable = None) -> dict:
    """Projects `target` (uint8/float [H, W, C] in [0, 255], H = W = G.img_resolution) into W.

    Starts from w = mu_w and noise ~ N(0, I). Runs cfg.num_steps Adam steps in jitted chunks of
    `chunk` steps (0: all at once); log(step, dist, reg) is called after each chunk.
    Returns {"w": [num_steps, w_dim] (after each step), "noise": {path: [R, R]},
    "dist": [num_steps], "reg": [num_steps]} as numpy arrays.
    """
    cfg = cfg or ProjectorConfig()
    r = G.img_resolution
    if tuple(target.shape) != (r, r, G.img_channels):
        raise ValueError(f"project: target must be [{r}, {r}, {G.img_channels}], "
                         f"got {list(target.shape)}")
    if w_avg is None or w_std is None:
        w_avg, w_std = w_stats(G, variables, cfg.w_avg_samples)
    noise, rest = split_noise(variables)
    k_init, k_steps = jax.random.split(key)
    noise = {p: jax.random.normal(jax.random.fold_in(k_init, i), v.shape)
             for i, (p, v) in enumerate(sorted(noise.items()))}
    target_x = box_downsample(jnp.asarray(target, jnp.float32)[None], cfg.max_feature_resolution)
    loss_fn = make_loss_fn(G, rest, feature_fn, feature_fn(target_x), cfg)
    step_fn, adam = make_step_fn(loss_fn, w_std, k_steps, cfg)
    w = jnp.asarray(w_avg, jnp.float32).reshape(1, 1, -1)
    carry = (w, noise, adam.init((w, noise)))
    run = jax.jit(lambda c, steps: jax.lax.scan(step_fn, c, steps))
    chunk = chunk or cfg.num_steps
    outs = []
    for start in range(0, cfg.num_steps, chunk):
        steps = jnp.arange(start, min(start + chunk, cfg.num_steps), dtype=jnp.float32)
        carry, out = run(carry, steps)
        outs.append(jax.device_get(out))
        if log is not None:
            log(int(steps[-1]), float(out[1][-1]), float(out[2][-1]))
    w_traj, dist, reg = (np.concatenate(v) for v in zip(*outs))
    return {"w": w_traj, "noise": {p: np.asarray(v) for p, v in carry[1].items()},
            "dist": dist, "reg": reg}


def synthesize(G, variables, w, noise: dict):
    """The image of a projection: w [w_dim] or [1, num_ws, w_dim], noise {path: [R, R]}."""
    _, rest = split_noise(variables)
    w = jnp.asarray(w, jnp.float32)
    w = w.reshape(1, 1, -1) if w.ndim == 1 else w
    return _synthesize(G, rest, {p: jnp.asarray(v) for p, v in noise.items()}, w, G.num_ws)
