"""Pins the partition spec of every leaf of every preset's train state on an 8-device CPU mesh.

The rule (gan_zoo/train/sharding.py): config.mesh names the mesh axes; config.param_rules maps
'/'-joined state paths (params, opt_state, ema_params, collections) to specs by the first regex
that matches, applied to the trailing dims and only where the axes divide them; every other leaf
is replicated. Input batches [S, A, B, H, W, C] shard B over `data`. Shapes come from
jax.eval_shape (trainer.build_state): nothing is allocated, so the paper-scale presets are cheap.

A layout change (a preset that gains a rule or a mesh axis) fails here, on purpose: update PINNED
in the same commit so that the change shows up in review.
"""

import re

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from configs import biggan, biggan_deep, progan, stylegan2, stylegan3
from gan_zoo.train import loop, sharding

FAMILIES = {"biggan": biggan, "biggan_deep": biggan_deep, "stylegan2": stylegan2,
            "stylegan3": stylegan3, "progan": progan}
# Every preset of every family (read from the PRESETS tables, so a new preset is covered).
PRESET_IDS = [f"{f}:{p}" for f, m in FAMILIES.items() for p in m.PRESETS]

# The layout of every preset today: one `data` axis over all devices, no parameter rules, so
# every state leaf is replicated (pure data parallelism). {preset id: {path: spec}} lists the
# leaves a preset shards; a preset not listed shards none.
DEFAULT_MESH = {"data": -1}
PINNED: dict = {}


def _config(preset_id: str):
    family, preset = preset_id.split(":")
    return FAMILIES[family].get_config(preset)


def _specs(abstract) -> dict:
    """{path: PartitionSpec} of every leaf of an abstract state built by build_state."""
    flat = jax.tree_util.tree_flatten_with_path(abstract)[0]
    out = {}
    for path, leaf in flat:
        assert isinstance(leaf, jax.ShapeDtypeStruct), f"{path}: allocated {type(leaf)}"
        assert isinstance(leaf.sharding, NamedSharding), f"{path}: {leaf.sharding}"
        name = "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)
        out[name] = leaf.sharding.spec
    return out


@pytest.fixture(scope="module")
def devices():
    if jax.device_count() != 8:
        pytest.fail(f"expected 8 CPU devices from tests/conftest.py, got {jax.device_count()}")
    return jax.devices()


@pytest.mark.parametrize("preset_id", PRESET_IDS)
def test_preset_state_layout_is_pinned(preset_id, devices):
    config = _config(preset_id)
    assert dict(config.mesh) == DEFAULT_MESH or preset_id in PINNED, \
        f"{preset_id}: new mesh {dict(config.mesh)}; pin its layout in PINNED"
    mesh = sharding.make_mesh(config.mesh, devices)
    assert dict(mesh.shape) == {"data": 8}
    _, abstract, shardings, _ = loop.build_state(config, mesh)
    specs = _specs(abstract)
    assert len(specs) > 100, f"{preset_id}: only {len(specs)} state leaves"
    assert any(p.startswith("params/") for p in specs) and any(
        p.startswith("opt_state/") for p in specs), f"{preset_id}: {sorted(specs)[:5]}..."
    # The shardings returned are the ones attached to the abstract state (and so to init/step).
    assert all(jax.tree.leaves(jax.tree.map(lambda a, s: a.sharding == s, abstract, shardings)))
    sharded = {path: spec for path, spec in specs.items() if spec != P()}
    assert sharded == PINNED.get(preset_id, {}), \
        f"{preset_id}: leaves sharded unexpectedly: {dict(list(sharded.items())[:5])}"


@pytest.mark.parametrize("preset_id", [i for i in PRESET_IDS if not i.startswith("progan:")])
def test_preset_input_batch_is_split_over_data(preset_id, devices):
    """Each of the 8 devices holds batch/8 samples of every sub- and micro-batch, nothing else."""
    config = _config(preset_id)
    t = config.train
    micro = t.batch_size // t.grad_accum
    assert micro % 8 == 0, f"{preset_id}: micro-batch {micro} does not split over 8 devices"
    mesh = sharding.make_mesh(config.mesh, devices)
    spec = sharding.batch_sharding(mesh)
    r = config.model.resolution
    shape = (2, t.grad_accum, micro, r, r, 3)  # [S, A, B, H, W, C]
    assert spec.spec == P(None, None, "data")
    assert spec.shard_shape(shape) == (2, t.grad_accum, micro // 8, r, r, 3)


def test_progan_stage_batches_split_over_data_where_they_divide(devices):
    """ProGAN's per-resolution batch (PG App. A.1: 16, then 14, 6, 3): whole batches only."""
    config = _config("progan:celebahq1024")
    mesh = sharding.make_mesh(config.mesh, devices)
    spec = sharding.batch_sharding(mesh)
    per_device = {int(r): spec.shard_shape((1, 1, b, 4, 4, 3))[2]
                  for r, b in config.train.batch_sizes.items() if b % 8 == 0}
    assert per_device == {4: 2, 8: 2, 16: 2, 32: 2, 64: 2, 128: 2}


# A rule set as a sharded preset would write it: BigGAN G/D 3x3 convs split their input
# channels over `model`, G's shared class embedding [classes, shared_dim] its rows.
_RULES = ((r"/conv[12]/weight$", ("model", None)), (r"shared/weight$", ("model", None)))


def test_rules_shard_params_optimizer_slots_and_ema_alike(devices):
    config = biggan.get_config("digits")  # ch 4: 16-channel convs; D's first conv reads RGB
    config.mesh = {"data": 4, "model": 2}
    config.param_rules = _RULES
    mesh = sharding.make_mesh(config.mesh, devices)
    _, abstract, _, _ = loop.build_state(config, mesh)
    specs = _specs(abstract)
    shapes = {p: s.shape for p, s in zip(specs, jax.tree.leaves(abstract))}
    conv = P(None, None, "model", None)  # [kh, kw, I, O]: I over `model`
    for where in ("params/g/", "opt_state/g/[0]/mu/", "opt_state/g/[0]/nu/", "ema_params/"):
        assert specs[where + "blocks_0_0/conv1/weight"] == conv, where
        assert specs[where + "blocks_2_0/conv2/weight"] == conv, where
        assert specs[where + "blocks_0_0/conv1/bias"] == P(), where
        assert specs[where + "shared/weight"] == P("model", None), where  # [10, 32]
    assert specs["params/d/blocks_1_0/conv1/weight"] == conv
    # D's first conv has I = 3 (RGB), which 2 does not divide: replicated, not an error.
    assert shapes["params/d/blocks_0_0/conv1/weight"][2] == 3
    assert specs["params/d/blocks_0_0/conv1/weight"] == P()
    # Nothing outside the rules is sharded: 1x1 shortcut convs, spectral-norm vectors, counters.
    matched = {p for p in specs if any(re.search(r, p) for r, _ in _RULES)}
    assert {p for p, s in specs.items() if s != P()} <= matched
    assert specs["params/g/blocks_0_0/conv_sc/weight"] == P()
    assert specs["step"] == P() and specs["opt_state/g/[0]/count"] == P()


def test_rule_applies_to_trailing_dims_and_first_match_wins(devices):
    mesh = sharding.make_mesh({"data": 4, "model": 2}, devices)
    state = {"a": {"kernel": jax.ShapeDtypeStruct((3, 3, 8, 6), np.float32),
                   "bias": jax.ShapeDtypeStruct((6,), np.float32)},
             "b": {"kernel": jax.ShapeDtypeStruct((5, 4), np.float32)}}
    rules = ((r"^a/kernel$", ("data", "model")), (r"kernel$", (None, "data")))
    got = jax.tree.map(lambda s: s.spec, sharding.state_shardings(state, mesh, rules),
                       is_leaf=lambda s: isinstance(s, NamedSharding))
    assert got == {"a": {"kernel": P(None, None, "data", "model"), "bias": P()},
                   "b": {"kernel": P(None, "data")}}
