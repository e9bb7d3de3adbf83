"""FSDP (issue #15 item 7): parameters, Adam slots and EMA sharded over an `fsdp` mesh axis by
config.param_rules alone (sharding.FSDP_RULES), the batch split over `data` x `fsdp`.

8 simulated CPU devices (tests/conftest.py). Shapes come from jax.eval_shape: the paper-scale
StyleGAN-T `full` generator (1.02B parameters) is never allocated.
"""

import re

import jax
import numpy as np
import pytest

from configs import stylegan_t as sgt_config
from gan_zoo import data as gdata
from gan_zoo import train
from gan_zoo.train import inference, loop, sharding
from tests.train._tiny import tiny_config, tiny_networks

FSDP_MESH = {"data": 2, "fsdp": 4}
SHARDED = r"^(params|opt_state|ema_params)/"  # what FSDP_RULES names (dim -2 over fsdp)


def _fsdp(config, mesh=FSDP_MESH):
    config.mesh, config.param_rules = dict(mesh), sharding.FSDP_RULES
    return config


def _train(config, n_steps: int):
    """n_steps of the jitted train step on config.mesh; returns (losses per step, state)."""
    mesh = sharding.make_mesh(config.mesh)
    recipe, _, shardings, init = train.build_state(config, mesh, tiny_networks(config))
    state, t = init(), config.train
    layout = gdata.Layout(recipe.real_batches_per_step, t.grad_accum, t.batch_size // t.grad_accum)
    batches = gdata.make_source(config.data, config.model.resolution, config.seed).batches(layout)
    in_sharding = sharding.batch_sharding(mesh)
    step_fn = train.make_train_step(recipe, t.grad_accum, shardings, in_sharding)
    losses = []
    for _ in range(n_steps):
        state, metrics = step_fn(state, jax.device_put(next(batches), in_sharding))
        losses.append({k: float(v) for k, v in metrics.items() if k.endswith(("loss", "norm"))})
    return losses, state


def test_fsdp4_training_equals_data_only_training():
    """2 steps of a tiny BigGAN on data=2 x fsdp=4 (params and Adam state in quarters) equal
    2 steps on data=8 (all replicated): same losses and gradient norms at every step. (Not the
    parameters leaf by leaf: Adam with b1 = 0 turns the float noise of the zero gradients of
    biases before BatchNorm into +-lr steps.)"""
    data_only, s1 = _train(_fsdp(tiny_config(**{"train.batch_size": 16}), {"data": 8}), 2)
    fsdp, s2 = _train(_fsdp(tiny_config(**{"train.batch_size": 16})), 2)
    for a, b in zip(data_only, fsdp):
        assert a.keys() == b.keys()
        np.testing.assert_allclose([b[k] for k in a], [a[k] for k in a], rtol=2e-5, atol=1e-6)
    # The trained fsdp state really is in quarters: every >= 2-D leaf of params, both Adam
    # slots and the EMA whose dim -2 4 divides holds a quarter of it per device; the rest whole.
    flat = _flat(s2)
    split = {k for k, v in flat.items() if re.match(r"(params|opt_state|ema_params)/", k)
             and v.ndim >= 2 and v.shape[-2] % 4 == 0}
    assert {k.split("/")[0] for k in split} == {"params", "opt_state", "ema_params"}
    assert len(split) >= 0.5 * sum(v.ndim >= 2 for v in flat.values()), sorted(split)
    for path, leaf in flat.items():
        want = list(leaf.shape)
        if path in split:
            want[-2] //= 4
        assert leaf.addressable_shards[0].data.shape == tuple(want), path
    assert all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(s1))  # no fsdp


def _flat(state) -> dict:
    flat = jax.tree_util.tree_flatten_with_path(state)[0]
    return {"/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path): leaf
            for path, leaf in flat}


def _expected_bytes(abstract, ways: int = 4) -> int:
    """Per-device bytes by FSDP_RULES' definition, counted here: a leaf under SHARDED with >= 2
    dims whose dim -2 `ways` divides holds 1/ways of itself; every other leaf is whole."""
    total = 0
    for path, leaf in _flat(abstract).items():
        n = int(np.prod(leaf.shape)) * np.dtype(leaf.dtype).itemsize
        split = re.match(SHARDED, path) and leaf.ndim >= 2 and leaf.shape[-2] % ways == 0
        total += n // ways if split else n
    return total


@pytest.fixture(scope="module")
def full512():
    """The paper's 1.02B StyleGAN-T `full512` state on data=2 x fsdp=4, shapes only (random
    feature-net towers: no weight files)."""
    config = _fsdp(sgt_config.get_config("full512"))
    config.model.feature_nets = "random"
    mesh = sharding.abstract_mesh(config.mesh, 8)
    _, abstract, shardings, _ = loop.build_state(config, mesh)
    return mesh, abstract


def test_full512_generator_and_adam_state_shard_over_fsdp(full512):
    mesh, abstract = full512
    flat = _flat(abstract)
    g_params = {p: v for p, v in flat.items() if p.startswith("params/g/G/")}
    assert 1_000e6 < sum(int(np.prod(v.shape)) for v in g_params.values()) < 1_050e6
    for path, leaf in g_params.items():
        spec = tuple(leaf.sharding.spec)
        if leaf.ndim >= 2 and leaf.shape[-2] % 4 == 0:
            assert spec[-2:] == ("fsdp", None), (path, leaf.shape, spec)
            # Adam's two slots and the EMA copy of the same leaf are laid out alike.
            rest = path[len("params/g/"):]
            for other in [p for p in flat if p.endswith("/" + rest) and p != path]:
                assert flat[other].sharding.spec == leaf.sharding.spec, other
        else:
            assert leaf.sharding.is_fully_replicated, (path, leaf.shape, spec)
    big = [p for p, v in g_params.items() if v.ndim == 4 and v.shape[-2] == 2048]
    assert len(big) >= 10, len(big)  # the 2048-channel 3x3 convs: [3, 3, 2048/4, O] per device
    assert all(flat[p].sharding.shard_shape(flat[p].shape)[-2] == 512 for p in big)
    # Frozen towers, generator buffers, counters and the rng stay whole on every device.
    for path, leaf in flat.items():
        if path.startswith(("collections/", "step", "rng")) or "/count" in path:
            assert leaf.sharding.is_fully_replicated, path


def test_summary_reports_per_device_bytes(full512):
    mesh, abstract = full512
    lines = inference.memory_lines(abstract, mesh)
    assert lines[0].startswith("Mesh: data=2, fsdp=4 (8 devices")
    state = [line for line in lines if line.startswith("State bytes per device: ")]
    mine, total = (int(x) for x in re.findall(r"(\d+) \(", state[0]))
    assert mine == _expected_bytes(abstract)
    assert total == sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
                        for v in jax.tree.leaves(abstract))
    assert mine < 0.35 * total  # G + text encoder + Adam + EMA in quarters; frozen CLIP whole
    # --mode=summary prints the same lines for any family (tiny BigGAN, data=2 x fsdp=4).
    text = inference.summary(_fsdp(tiny_config()), tiny_networks(tiny_config()), 8)
    assert "G params: " in text and "Mesh: data=2, fsdp=4 (8 devices; batch split over " \
        "('data', 'fsdp'))" in text
    g = re.search(r"G parameter bytes per device: (\d+) \(.*\) of (\d+) \(", text)
    assert g and 0 < int(g.group(1)) < int(g.group(2)), text[-400:]


def test_configs_fsdp_rules_are_the_trainer_rules():
    from configs import common  # noqa: PLC0415
    from configs import stylegan_t as t_config  # noqa: PLC0415
    assert common.FSDP_RULES == sharding.FSDP_RULES
    c = t_config.get_config("full512,fsdp=4")
    assert dict(c.mesh) == {"data": -1, "fsdp": 4} and c.param_rules == sharding.FSDP_RULES
    plain = t_config.get_config("lite64")
    assert dict(plain.mesh) == {"data": -1} and plain.param_rules == ()
