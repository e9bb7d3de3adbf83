"""Mesh and shardings as data: config.mesh names the axes, config.param_rules maps parameter
paths to partition specs. The batch is sharded over the `data` axis."""

import re

import jax
import numpy as np
from flax import traverse_util
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


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


def _spec_for(path: str, shape, rules, mesh) -> P:
    """The first rule whose regex matches `path`, if its axes divide the shape; else replicated."""
    for pattern, spec in rules:
        if re.search(pattern, path):
            spec = tuple(spec)[-len(shape):] if shape else ()
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


def batch_sharding(mesh) -> NamedSharding:
    """Input batches [S, A, B, ...] (sub-batch, micro-batch, sample): samples over `data`."""
    return NamedSharding(mesh, P(None, None, DATA_AXIS))


def describe(shardings) -> dict:
    """{path: PartitionSpec} of a sharding tree, for logs and the layout test."""
    flat = traverse_util.flatten_dict(
        jax.tree.map(lambda s: s.spec, shardings, is_leaf=lambda s: isinstance(s, NamedSharding)),
        sep="/") if isinstance(shardings, dict) else {}
    return flat
