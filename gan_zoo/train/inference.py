"""Inference entry points of the CLI: EMA-G samples from the latest checkpoint, parameter tables."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from gan_zoo.train import checkpoint, evaluation, sharding
from gan_zoo.train.loop import build_state, restore_run


def even_labels(num: int, n_classes: int) -> np.ndarray:
    """num labels spread evenly over the classes, in blocks: [0, 0, ..., 1, 1, ...]."""
    return (np.arange(num) * max(n_classes, 1) // max(num, 1)).astype(np.int32)


def sample(config, workdir: str, num: int = 1000, labels=None, truncation=None,
           batch: int = 0, networks=None, step="latest"):
    """Samples of a checkpoint's EMA generator (standing statistics recomputed); step: 'latest',
    'best' (config.checkpoint.best_metric's) or a step number.

    Returns (images uint8 [num, H, W, 3], labels int32 [num]).
    """
    mesh = sharding.make_mesh(config.mesh)
    # The recipe of the checkpoint's stage (ProGAN: its resolution and α).
    recipe, state, _ = restore_run(config, workdir, mesh, networks, step)
    n_classes = max(recipe.n_classes, 1)
    labels = even_labels(num, n_classes) if labels is None else np.asarray(labels, np.int32)
    if labels.shape != (num,) or labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels: expected {num} class ids in [0, {n_classes}), got {labels}")
    trunc = float(config.sample.truncation if truncation is None else truncation)
    key = jax.random.PRNGKey(config.seed + 1)
    cols = state.collections["g"]
    if recipe.sampling_collections is not None:
        cols = jax.jit(recipe.sampling_collections, static_argnums=2)(
            state, jax.random.fold_in(key, 0), trunc)
    batch = batch or config.sample.standing_stats_batch_size
    fn = jax.jit(recipe.sample_fn, static_argnums=3)
    out = []
    for i in range(math.ceil(num / batch)):
        y = labels[i * batch:(i + 1) * batch]
        y = np.pad(y, (0, batch - len(y)))  # fixed shape: one compile
        images = fn(state, jax.random.fold_in(key, i + 1), jnp.asarray(y), trunc, cols)
        out.append(np.asarray(jax.device_get(images))[: min(batch, num - i * batch)])
    x = np.concatenate(out)
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8), labels


def param_table(params) -> tuple[list, int]:
    """(lines 'path  shape  count', total count) for a parameter tree."""
    flat = traverse_util.flatten_dict(params, sep="/")
    lines = [f"  {k:<60} {str(tuple(v.shape)):<20} {int(np.prod(v.shape)):>12,}"
             for k, v in sorted(flat.items())]
    return lines, int(sum(int(np.prod(v.shape)) for v in flat.values()))


def _bytes(mine: int, total: int) -> str:
    return f"{mine} ({mine / 2**30:.3f} GiB) of {total} ({total / 2**30:.3f} GiB)"


def memory_lines(abstract, mesh) -> list:
    """Per-device bytes of the train state under config.mesh / config.param_rules: each group's
    parameters, and the whole state (parameters, optimizer slots, EMA, collections)."""
    axes = ", ".join(f"{a}={n}" for a, n in mesh.shape.items())
    out = [f"Mesh: {axes} ({mesh.size} devices; batch split over {sharding.batch_axes(mesh)})"]
    for group, params in sorted(abstract.params.items(), reverse=True):
        mine, total = sharding.bytes_per_device(params)
        out.append(f"{group.upper()} parameter bytes per device: {_bytes(mine, total)}")
    mine, total = sharding.bytes_per_device(abstract)
    out.append(f"State bytes per device: {_bytes(mine, total)}")
    return out


def summary(config, networks=None, num_devices=None) -> str:
    """Each network's parameter table and totals ('G params: N', 'D params: N'), then the state's
    bytes per device on config.mesh (-1 axes sized by num_devices, default this machine's);
    built with eval_shape on an abstract mesh: nothing is allocated, no training."""
    mesh = sharding.abstract_mesh(config.mesh, num_devices)
    _, abstract, _, _ = build_state(config, mesh, networks)
    out = []
    for group, params in sorted(abstract.params.items(), reverse=True):  # g before d
        lines, total = param_table(params)
        out += [f"{group.upper()} parameters:"] + lines
        out.append(f"{group.upper()} params: {total}")
    return "\n".join(out + memory_lines(abstract, mesh))


def evaluate_checkpoint(config, workdir: str, networks=None, writer=None,
                        step="latest") -> dict:
    """config.eval for a checkpoint in workdir (the CLI's --mode=eval); step: 'latest', 'best'
    (config.checkpoint.best_metric's) or a step number; config.eval.truncation_sweep set: the
    sample metrics at each truncation (evaluation.sweep_key). Here, not in evaluation.py: it
    restores through loop.restore_run, and loop imports evaluation (imports go one way)."""
    sweep = evaluation.truncation_sweep(config.eval)  # a bad value fails before the restore
    mesh = sharding.make_mesh(config.mesh)
    if checkpoint.Checkpointer(workdir, config.checkpoint.keep, False).latest_step() is None:
        raise FileNotFoundError(f"--mode=eval: no checkpoint in {workdir}; train first")
    recipe, state, _ = restore_run(config, workdir, mesh, networks, step)  # its stage
    return evaluation.evaluate_state(recipe, state, config, workdir, mesh, writer, sweep)
