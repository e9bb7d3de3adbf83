"""Mesh and shardings as data: config.mesh names the axes, config.param_rules maps parameter
paths to partition specs. The batch is sharded over the `data` axis and, where the mesh has one,
the `fsdp` axis: fully sharded data parallelism (ZeRO-3) keeps each device's own samples and
shards the parameters and optimizer state over `fsdp` (FSDP_RULES); the jitted step gathers
each weight where it is used (GSPMD), so no model code knows about it."""

import math
import re

import jax
import numpy as np
from flax import traverse_util
from jax.sharding import AbstractMesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"
BATCH_AXES = (DATA_AXIS, FSDP_AXIS)  # mesh axes that split the samples of a batch

# config.param_rules of an FSDP layout: the second-to-last dim of every >= 2-D parameter, Adam
# slot and EMA leaf (a conv kernel's input channels I of [kh, kw, I, O], a dense kernel's inputs)
# over `fsdp` where it divides; 1-D leaves (biases, gains), collections (w/x averages, BN stats,
# frozen buffers), counters and the rng stay replicated. (Not the last dim: on a data=2 x fsdp=4
# CPU mesh, XLA (jax 0.10.2) returned exactly twice the gradient of one O-sharded conv kernel,
# the first conv of tests/train/_tiny.py's G; data=4 x fsdp=2, 1 x 8 and I-sharding were exact.
# tests/train/fsdp_test.py compares fsdp training with data-only training.)
FSDP_RULES = ((r"^(params|opt_state|ema_params)/", (FSDP_AXIS, None)),)


def make_mesh(mesh_cfg, devices=None) -> jax.sharding.Mesh:
    """A Mesh from {axis: size} (one size may be -1: the remaining devices), `data` first."""
    devices = list(jax.devices() if devices is None else devices)
    axes = dict(mesh_cfg)
    if DATA_AXIS not in axes:
        raise ValueError(f"config.mesh must name the '{DATA_AXIS}' axis, got {axes}")
    known = int(np.prod([s for s in axes.values() if s != -1]))
    if list(axes.values()).count(-1) > 1 or len(devices) % known and -1 in axes.values():
        raise ValueError(f"config.mesh {axes}: sizes must divide the {len(devices)} devices, "
                         "with at most one -1")
    shape = tuple(len(devices) // known if s == -1 else s for s in axes.values())
    if -1 not in axes.values() and known < len(devices):
        devices = devices[:known]  # an explicit smaller mesh uses the first devices
    if int(np.prod(shape)) != len(devices):
        raise ValueError(f"config.mesh {axes} covers {int(np.prod(shape))} devices, "
                         f"but there are {len(devices)}")
    return jax.sharding.Mesh(np.asarray(devices).reshape(shape), tuple(axes))


def abstract_mesh(mesh_cfg, num_devices=None) -> AbstractMesh:
    """config.mesh's axis sizes without devices (layouts and per-device bytes of a machine this
    need not be): -1 is the devices left by the other axes (num_devices, default all; at
    least 1)."""
    axes = dict(mesh_cfg)
    n = jax.device_count() if num_devices is None else num_devices
    known = math.prod(s for s in axes.values() if s != -1)
    return AbstractMesh(tuple(max(n // known, 1) if s == -1 else int(s) for s in axes.values()),
                        tuple(axes))


def _spec_for(path: str, shape, rules, mesh) -> P:
    """The first rule whose regex matches `path`, if its axes divide the shape; else replicated.
    An axis the mesh lacks leaves its dim whole (FSDP_RULES on a mesh without `fsdp`)."""
    for pattern, spec in rules:
        if re.search(pattern, path):
            spec = tuple(a if a in mesh.shape else None for a in spec)
            spec = spec[-len(shape):] if shape else ()
            spec = (None,) * (len(shape) - len(spec)) + spec
            ok = all(a is None or dim % mesh.shape[a] == 0 for a, dim in zip(spec, shape))
            return P(*spec) if ok else P()
    return P()


def state_shardings(abstract_state, mesh, rules=()):
    """NamedShardings for every leaf of the (abstract) state: rules by '/'-joined path, default
    replicated. rules: sequence of (regex, tuple of mesh axes or None per trailing dim)."""
    def leaf_sharding(path, leaf):
        name = "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)
        return NamedSharding(mesh, _spec_for(name, getattr(leaf, "shape", ()), rules, mesh))
    return jax.tree_util.tree_map_with_path(leaf_sharding, abstract_state)


def batch_axes(mesh) -> tuple:
    """The mesh axes the samples of a batch are split over: `data`, then `fsdp` if present."""
    return tuple(a for a in BATCH_AXES if a in mesh.shape)


def batch_devices(mesh) -> int:
    """How many ways a batch is split: the product of the batch axes' sizes."""
    return math.prod(mesh.shape[a] for a in batch_axes(mesh))


def batch_sharding(mesh) -> NamedSharding:
    """Input batches [S, A, B, ...] (sub-batch, micro-batch, sample): samples over `data` (x
    `fsdp`)."""
    axes = batch_axes(mesh)
    return NamedSharding(mesh, P(None, None, axes[0] if len(axes) == 1 else axes))


def bytes_per_device(abstract) -> tuple[int, int]:
    """(bytes one device holds, total bytes) of an abstract state whose leaves
    carry NamedShardings (replicated leaves count whole on every device)."""
    per_device = total = 0
    for leaf in jax.tree.leaves(abstract):
        size = np.dtype(leaf.dtype).itemsize
        total += math.prod(leaf.shape) * size
        per_device += math.prod(leaf.sharding.shard_shape(leaf.shape)) * size
    return per_device, total


def describe(shardings) -> dict:
    """{path: PartitionSpec} of a sharding tree, for logs and the layout test."""
    flat = traverse_util.flatten_dict(
        jax.tree.map(lambda s: s.spec, shardings, is_leaf=lambda s: isinstance(s, NamedSharding)),
        sep="/") if isinstance(shardings, dict) else {}
    return flat
