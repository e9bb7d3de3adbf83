"""Pivotal Tuning Inversion (Roich et al. 2022), as StyleGAN-XL uses it (SG-XL §4.2; spec
stylegan_xl_and_t.md §1.9; code: autonomousvision/stylegan_xl `run_inversion.py`
`pivotal_tuning`): after projecting a target into W, fine-tune all generator parameters so that
the pivot w renders the target, while a locality regulariser keeps G unchanged away from it.

    cfg = PTIConfig()                                          # the official constants
    tuned, log = pivotal_tuning(G, variables, pivot_w, target, feature_fn, key, cfg)
    img = synthesize(G, tuned, pivot_w)                        # ~ the target

Loss per step (pivot ws = the pivot w broadcast to all layers, images in [0, 255], box-
downsampled to <= 256 before the distances, as the official code):
    MSE(target, G_t(pivot)) + LPIPS(target, G_t(pivot)) + lambda_R LPIPS(G_t(w_r), G_o(w_r)),
    w_r = pivot + alpha (f_o(z, c; psi) - pivot) / ||f_o(z, c; psi) - pivot||,
with G_t the tuned, G_o the original generator, z ~ N(0, I) and c a uniform class drawn anew each
step, the norm over all [num_ws, w_dim] entries (so each layer's w moves by alpha / sqrt(num_ws)),
the MSE a mean over pixels in [0, 255] units (official `MSELoss` on the scaled images).

`save_tuned` writes the tuned G where gan_zoo.tools.generate reads it (see its docstring).
"""

import dataclasses
import json
import os
import pathlib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_zoo.tools import projector


@dataclasses.dataclass(frozen=True)
class PTIConfig:
    """PTI constants; defaults are run_inversion.py's (spec §1.9)."""

    num_steps: int = 350  # Adam steps on all G parameters
    learning_rate: float = 3e-4  # constant; Adam betas (0.9, 0.999) (torch defaults)
    reg_psi: float = 0.5  # truncation psi of the locality sample f(z, c; psi)
    reg_alpha: float = 30.0  # alpha: distance of w_r from the pivot
    reg_weight: float = 10.0  # lambda_R: weight of LPIPS(G_t(w_r), G_o(w_r))
    max_feature_resolution: int = 256  # area-downsample larger images before MSE / LPIPS


def morph_w(w, pivot, alpha: float):
    """pivot + alpha (w - pivot) / ||w - pivot||, the L2 norm over the whole tensor (PTI §3.3
    locality regularisation; official get_morphed_w_code). w, pivot: [1, num_ws, w_dim]."""
    d = w - pivot
    return pivot + alpha * d / jnp.sqrt(jnp.sum(jnp.square(d)))


def locality_ws(G, variables, pivot_ws, key, cfg: PTIConfig):
    """w_r: one z ~ N(0, I) (and a uniform class for a conditional G) mapped by the original G
    with psi = cfg.reg_psi, moved to distance alpha from the pivot. -> [1, num_ws, w_dim]."""
    k_z, k_c = jax.random.split(key)
    z = jax.random.normal(k_z, (1, G.z_dim))
    c = None
    if G.c_dim:
        c = jax.nn.one_hot(jax.random.randint(k_c, (1,), 0, G.c_dim), G.c_dim)
    w = G.apply(variables, z, c, psi=cfg.reg_psi, method="map")
    return morph_w(w, pivot_ws, cfg.reg_alpha)


def _render(G, variables, ws, noise_mode: str, max_res: int):
    """g(ws) in [0, 255], box-downsampled to <= max_res: [1, H', W', C]."""
    img, _ = G.apply(variables, ws, noise_mode=noise_mode, method="synthesize")
    return projector.box_downsample(projector.to_feature_range(img), max_res)


def make_loss_fn(G, variables, feature_fn: Callable, target, pivot_ws, cfg: PTIConfig):
    """loss(params, key) -> (total, {"mse", "lpips", "reg", "dist"}) for the tuned params; the
    original G is `variables` (its other collections are shared, not tuned)."""
    r = cfg.max_feature_resolution
    target_x = projector.box_downsample(jnp.asarray(target, jnp.float32)[None], r)
    target_f = feature_fn(target_x)
    lpips = lambda a, b: jnp.sum(jnp.square(a - b))  # squared LPIPS feature distance

    def loss_fn(params, key):
        tuned = {**variables, "params": params}
        x = _render(G, tuned, pivot_ws, "const", r)
        mse = jnp.mean(jnp.square(target_x - x))  # official MSELoss, images in [0, 255]
        rec = lpips(target_f, feature_fn(x))
        w_r = locality_ws(G, variables, pivot_ws, key, cfg)
        new = feature_fn(_render(G, tuned, w_r, "none", r))
        old = jax.lax.stop_gradient(feature_fn(_render(G, variables, w_r, "none", r)))
        reg = cfg.reg_weight * lpips(old, new)
        dist = jnp.sqrt(jnp.sum(jnp.square(w_r - pivot_ws)))
        return mse + rec + reg, {"mse": mse, "lpips": rec, "reg": reg, "dist": dist}
    return loss_fn


def pivot_ws(G, w):
    """w [w_dim] | [1, w_dim] | [1, num_ws, w_dim] -> [1, num_ws, w_dim] (broadcast)."""
    w = jnp.asarray(w, jnp.float32)
    return jnp.broadcast_to(w.reshape(1, -1, G.w_dim), (1, G.num_ws, G.w_dim))


def pivotal_tuning(G, variables, pivot_w, target, feature_fn: Callable, key,
                   cfg: PTIConfig = None, chunk: int = 0, log: Callable = None) -> tuple:
    """Tunes all of variables["params"] so that the pivot renders `target` (uint8/float
    [H, W, C] in [0, 255], H = W = G.img_resolution). Runs cfg.num_steps Adam steps in jitted
    chunks of `chunk` steps (0: all at once); log(step, metrics of the last step) per chunk.
    Returns (tuned variables, {"mse", "lpips", "reg", "dist": [num_steps]} as numpy)."""
    cfg = cfg or PTIConfig()
    r = G.img_resolution
    if tuple(np.shape(target)) != (r, r, G.img_channels):
        raise ValueError(f"pivotal_tuning: target must be [{r}, {r}, {G.img_channels}], "
                         f"got {list(np.shape(target))}")
    loss_fn = make_loss_fn(G, variables, feature_fn, target, pivot_ws(G, pivot_w), cfg)
    adam = optax.adam(cfg.learning_rate, b1=0.9, b2=0.999, eps=1e-8)

    def body(step, carry):  # one Adam step; the step's loss terms go to row `step` of hist
        params, opt_state, hist = carry
        grads, aux = jax.grad(loss_fn, has_aux=True)(params, jax.random.fold_in(key, step))
        updates, opt_state = adam.update(grads, opt_state, params)
        hist = {k: hist[k].at[step].set(aux[k]) for k in hist}
        return optax.apply_updates(params, updates), opt_state, hist

    # fori_loop with traced bounds: one compile for chunks of any length.
    run = jax.jit(lambda carry, a, b: jax.lax.fori_loop(a, b, body, carry))
    hist = {k: jnp.zeros(cfg.num_steps, jnp.float32) for k in ("mse", "lpips", "reg", "dist")}
    carry = (variables["params"], adam.init(variables["params"]), hist)
    chunk = chunk or cfg.num_steps
    for start in range(0, cfg.num_steps, chunk):
        end = min(start + chunk, cfg.num_steps)
        carry = run(carry, start, end)
        if log is not None:
            log(end - 1, {k: float(v[end - 1]) for k, v in carry[2].items()})
    return {**variables, "params": carry[0]}, {k: np.asarray(v) for k, v in carry[2].items()}


def synthesize(G, variables, w):
    """The pivot's image under `variables`: float [1, H, W, C] in ~[-1, 1] (noise 'const')."""
    img, _ = G.apply(variables, pivot_ws(G, w), noise_mode="const", method="synthesize")
    return img


# ----------------------------------------------------------------------------------------------
# Writing the tuned generator where gan_zoo.tools.generate reads it.

def save_tuned(args, G, tuned, outdir: str) -> list:
    """Writes the tuned G in the form of its source; returns the written paths.

    --workdir source: `<outdir>/pti_workdir`, a workdir whose one checkpoint is the source's
    latest train state (same step, so a staged run keeps its stage) with the EMA generator
    replaced by the tuned G; read it with `generate --workdir=<outdir>/pti_workdir
    --config=<the same config>`. The source workdir is left untouched (a new step in it would
    silently replace its G for every later tool).
    --network source (StyleGAN2/3 .pkl or .npz): `<outdir>/G_pti.npz` (torch names) and
    `G_pti.json` (class_name, init_kwargs), read by `generate --network=<outdir>/G_pti.npz`.
    """
    if getattr(args, "workdir", None):
        return [write_workdir(args.workdir, args.config, tuned, os.path.join(outdir,
                                                                             "pti_workdir"))]
    return write_network_npz(args, G, tuned, outdir)


def write_workdir(src_workdir: str, config_spec: str, tuned, out: str) -> str:
    """<out>/checkpoints/<step>: the source's latest state with the tuned EMA G."""
    from gan_zoo.config_file import load_config_file
    from gan_zoo.train import checkpoint, sharding
    from gan_zoo.train.loop import restore_run

    config = load_config_file(config_spec)
    _, state, step = restore_run(config, src_workdir, sharding.make_mesh(config.mesh))
    params = jax.tree.map(lambda old, new: jax.device_put(new, old.sharding),
                          state.ema_params if state.ema_params is not None else state.params["g"],
                          tuned["params"])
    if state.ema_params is not None:
        state = state.replace(ema_params=params)
    else:
        state = state.replace(params={**state.params, "g": params})
    ckpt = checkpoint.Checkpointer(out, 1, False)
    if ckpt.latest_step() is not None:
        ckpt.close()
        raise ValueError(f"--outdir: {out} already holds a checkpoint; use an empty --outdir")
    ckpt.save(step, state, json.loads(config.to_json_best_effort()))
    ckpt.wait()
    ckpt.close()
    return out


def _source_kwargs(args) -> dict:
    """The generator's official init_kwargs of the --network file (.pkl, or .npz + JSON)."""
    from gan_zoo.tools import generate

    path = pathlib.Path(args.network)
    if path.suffix == ".pkl":
        from gan_zoo.convert import network_spec, official

        nets = official.load_official(str(path))
        return network_spec.from_official(nets)["G"]
    if path.suffix != ".npz":
        raise ValueError(f"--pti: cannot write a tuned copy of --network={path} (StyleGAN2/3 "
                         ".pkl or .npz expected)")
    return generate._network_kwargs(path, args.network_kwargs)[0]  # noqa: SLF001


def export_state(G, variables) -> dict:
    """Flax variables -> official torch-named state dict, StyleGAN3 design filters included."""
    from gan_zoo.convert import stylegan2 as sg2c
    from gan_zoo.convert import stylegan3 as sg3c

    state = sg2c.export_state_dict(variables)
    if _is_stylegan3(G):
        filters = sg3c.design_filters(G)
        for layer in variables["ema_stats"]["synthesis"]:  # one magnitude EMA per layer
            for kind in ("up_filter", "down_filter"):
                f = filters(f"synthesis.{layer}.{kind}")
                if f is not None:
                    state[f"synthesis.{layer}.{kind}"] = np.asarray(f)
    return state


def _is_stylegan3(G) -> bool:
    from gan_zoo.models import stylegan3

    return isinstance(G, stylegan3.Generator)


def write_network_npz(args, G, tuned, outdir: str) -> list:
    """<outdir>/G_pti.npz + G_pti.json, the inputs of generate --network."""
    kwargs = _source_kwargs(args)
    module = "networks_stylegan3" if _is_stylegan3(G) else "networks_stylegan2"
    paths = [os.path.join(outdir, "G_pti.npz"), os.path.join(outdir, "G_pti.json")]
    np.savez(paths[0], **export_state(G, tuned))
    with open(paths[1], "w") as f:
        json.dump({"class_name": f"training.{module}.Generator", "init_kwargs": kwargs}, f,
                  indent=2)
    return paths


def run(args, G, variables, target, w, noise: dict, feature_fn: Callable) -> list:
    """`project --pti`: tunes G around the projected w (and noise maps), writes proj_pti.png
    (the pivot under the tuned G), pti_log.npz and the tuned G; returns the written paths."""
    from gan_zoo.tools import sampling
    from gan_zoo.train import writers

    cfg = PTIConfig(num_steps=args.pti_steps, learning_rate=args.pti_learning_rate)
    if cfg.num_steps < 1:
        raise ValueError(f"--pti_steps: expected a positive integer, got {cfg.num_steps}")
    _, rest = projector.split_noise(variables)
    variables = projector.merge_noise(rest, {p: jnp.asarray(v) for p, v in noise.items()})
    log = lambda step, m: print(f"pti step {step + 1:4d}/{cfg.num_steps}: " + " ".join(
        f"{k} {v:.4g}" for k, v in m.items()), flush=True)
    tuned, hist = pivotal_tuning(G, variables, w, target, feature_fn,
                                 jax.random.PRNGKey(args.seed), cfg, args.log_every, log)
    paths = [os.path.join(args.outdir, "proj_pti.png"), os.path.join(args.outdir, "pti_log.npz")]
    sampling.save_image(paths[0], writers.to_uint8(synthesize(G, tuned, w))[0])
    np.savez(paths[1], **hist)
    return paths + save_tuned(args, G, tuned, args.outdir)
