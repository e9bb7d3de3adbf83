"""Batch norm with reduction groups and BigGAN ccbn (spec biggan.md §1.2, §2.5, §4)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gan_zoo import nn as gnn
from tests.nn import _reference as ref

KEY = jax.random.PRNGKey(0)
EPS = 1e-5


def _x(n=8, h=3, w=2, c=4, seed=1):
    return 2.0 + 3.0 * jax.random.normal(jax.random.PRNGKey(seed), (n, h, w, c))


def _np_group_bn(x, k, eps=EPS):
    """Per-group torch BN in NCHW: groups of k consecutive samples. -> (out NHWC, means, vars)."""
    xc = ref.nhwc_to_nchw(x)
    outs, means, vars_ = [], [], []
    for g in range(0, xc.shape[0], k):
        o, m, v = ref.batch_norm_train_nchw(xc[g:g + k], eps)
        outs.append(o)
        means.append(m)
        vars_.append(v)
    return ref.nchw_to_nhwc(np.concatenate(outs)), np.stack(means), np.stack(vars_)


def test_train_matches_numpy_and_updates_running_stats_with_unbiased_var():
    bn = gnn.BatchNorm()
    x = _x()
    v = bn.init(KEY, x, train=True)
    assert set(v["batch_stats"]) == {"stored_mean", "stored_var"}
    gain = jnp.linspace(0.5, 2.0, 4)
    bias = jnp.linspace(-1.0, 1.0, 4)
    v = {**v, "params": {"gain": gain, "bias": bias}}
    out, state = bn.apply(v, x, train=True, mutable=["batch_stats"])
    expected, mean, var = _np_group_bn(x, 8)
    np.testing.assert_allclose(out, expected * np.asarray(gain) + np.asarray(bias),
                               rtol=1e-5, atol=1e-5)
    n = 8 * 3 * 2
    stats = state["batch_stats"]
    np.testing.assert_allclose(stats["stored_mean"], 0.1 * mean[0], rtol=1e-5)
    np.testing.assert_allclose(stats["stored_var"], 0.9 + 0.1 * var[0] * n / (n - 1), rtol=1e-5)


def test_eval_uses_running_stats():
    bn = gnn.BatchNorm(use_affine=False, eps=1e-4)
    x = _x()
    v = bn.init(KEY, x, train=False)
    assert "params" not in v
    mean, var = jnp.arange(4.0), jnp.arange(1.0, 5.0)
    out = bn.apply({"batch_stats": {"stored_mean": mean, "stored_var": var}}, x, train=False)
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(np.asarray(var) + 1e-4), rtol=1e-5)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_virtual_groups_equal_per_group_numpy_bn(k):
    bn = gnn.BatchNorm(use_affine=False, reduction_group=k)
    x = _x(h=2, w=2)
    v = bn.init(KEY, x, train=True)
    out, state = bn.apply(v, x, train=True, mutable=["batch_stats"])
    expected, means, vars_ = _np_group_bn(x, k)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    n = k * 2 * 2
    np.testing.assert_allclose(state["batch_stats"]["stored_mean"], 0.1 * means.mean(0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state["batch_stats"]["stored_var"],
                               0.9 + 0.1 * (vars_ * n / (n - 1)).mean(0), rtol=1e-5)


def test_device_group_is_batch_over_device_count():
    assert jax.device_count() == 8  # tests/conftest.py
    x = _x(n=16)
    dev, two = gnn.BatchNorm(reduction_group="device"), gnn.BatchNorm(reduction_group=2)
    v = dev.init(KEY, x, train=True)
    out_dev = dev.apply(v, x, train=True, mutable=["batch_stats"])
    out_two = two.apply(v, x, train=True, mutable=["batch_stats"])
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), out_dev, out_two)
    # An explicit device count overrides the default.
    four = gnn.BatchNorm(reduction_group="device", num_devices=4)
    np.testing.assert_allclose(four.apply(v, x, train=True, mutable=["batch_stats"])[0],
                               _np_group_bn(x, 4)[0], rtol=1e-4, atol=1e-4)


def test_cross_replica_bn_on_8_devices_equals_full_batch_bn():
    mesh = Mesh(np.array(jax.devices()), ("data",))
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    bn = gnn.BatchNorm(use_affine=False)
    x = _x(n=16)
    v = bn.init(KEY, x, train=True)
    apply = jax.jit(lambda v_, x_: bn.apply(v_, x_, train=True, mutable=["batch_stats"]))
    x_sharded = jax.device_put(x, sharding)
    assert len(x_sharded.addressable_shards) == 8
    out_sharded, stats_sharded = apply(v, x_sharded)
    out_full, stats_full = bn.apply(v, x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(out_sharded, out_full, rtol=1e-5, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), stats_sharded,
                 stats_full)
    np.testing.assert_allclose(out_full, _np_group_bn(x, 16)[0], rtol=1e-4, atol=1e-4)
    # Per-device statistics (2 samples per shard) would give a different answer.
    assert not np.allclose(out_sharded, _np_group_bn(x, 2)[0], atol=1e-2)


def test_bfloat16_input_keeps_dtype_and_float32_stats():
    bn = gnn.BatchNorm(use_affine=False)
    x = _x()
    v = bn.init(KEY, x, train=True)
    out, state = bn.apply(v, x.astype(jnp.bfloat16), train=True, mutable=["batch_stats"])
    assert out.dtype == jnp.bfloat16
    assert state["batch_stats"]["stored_var"].dtype == jnp.float32
    np.testing.assert_allclose(out.astype(np.float32), _np_group_bn(x, 8)[0], atol=5e-2)


def test_bad_group_and_state_errors():
    x = _x(n=6)
    v = gnn.BatchNorm().init(KEY, x, train=False)
    with pytest.raises(ValueError, match=r"reduction_group=4 .*batch size 6"):
        gnn.BatchNorm(reduction_group=4).apply(v, x, train=True, mutable=["batch_stats"])
    with pytest.raises(ValueError, match="num_devices=8"):
        gnn.BatchNorm(reduction_group="device").apply(v, x, train=True, mutable=["batch_stats"])
    with pytest.raises(ValueError, match="reduction_group must be"):
        gnn.BatchNorm(reduction_group="replica").apply(v, x, train=True, mutable=["batch_stats"])
    with pytest.raises(ValueError, match="mutable"):
        gnn.BatchNorm().apply(v, x, train=True)
    with pytest.raises(ValueError, match="more than 1 value"):
        gnn.BatchNorm(reduction_group=1).apply(v, x[:, :1, :1], train=True,
                                               mutable=["batch_stats"])


def test_conditional_bn_sn_dense_matches_direct_computation():
    # Normal init: the default orthogonal init has sigma = 1, which would hide a missing 1/sigma.
    ccbn = gnn.ConditionalBatchNorm(weight_init=jax.nn.initializers.normal(0.5))
    x, y = _x(), jax.random.normal(jax.random.PRNGKey(2), (8, 6))
    v = ccbn.init(KEY, x, y, train=True)
    assert set(v["params"]) == {"gain", "bias"}
    assert v["params"]["gain"]["weight"].shape == (6, 4)  # torch gain.weight is [4, 6]
    assert set(v["spectral_norm"]["gain"]) == {"u0", "sv0"}
    assert set(v["batch_stats"]) == {"stored_mean", "stored_var"}
    out, state = ccbn.apply(v, x, y, train=True, mutable=["batch_stats", "spectral_norm"])
    proj = {}
    for name in ("gain", "bias"):
        w = np.asarray(v["params"][name]["weight"], np.float64)
        sigma, _, _ = ref.sn_step(w.T, v["spectral_norm"][name]["u0"])
        proj[name] = (np.asarray(y, np.float64) @ (w / sigma))[:, None, None, :]
    expected = _np_group_bn(x, 8)[0] * (1 + proj["gain"]) + proj["bias"]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    assert not np.allclose(state["spectral_norm"]["gain"]["sv0"], 1.0, atol=0.1)
    assert not np.allclose(state["batch_stats"]["stored_mean"], 0.0)


def test_conditional_bn_embedding_eval_uses_class_rows_and_running_stats():
    ccbn = gnn.ConditionalBatchNorm(projection="embedding", num_classes=5)
    x, ids = _x(), jnp.array([0, 1, 2, 3, 4, 0, 1, 2])
    v = ccbn.init(KEY, x, ids, train=False)
    assert "spectral_norm" not in v and v["params"]["gain"]["weight"].shape == (5, 4)
    mean, var = jnp.full((4,), 1.5), jnp.full((4,), 4.0)
    v = {**v, "batch_stats": {"stored_mean": mean, "stored_var": var}}
    out = ccbn.apply(v, x, ids, train=False)
    g = np.asarray(v["params"]["gain"]["weight"])[ids][:, None, None, :]
    b = np.asarray(v["params"]["bias"]["weight"])[ids][:, None, None, :]
    expected = (np.asarray(x) - 1.5) / np.sqrt(4.0 + EPS) * (1 + g) + b
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_conditional_bn_errors():
    x = _x()
    with pytest.raises(ValueError, match="y"):
        gnn.ConditionalBatchNorm().init(KEY, x, jnp.ones((4, 6)), train=False)
    with pytest.raises(ValueError, match="num_classes"):
        gnn.ConditionalBatchNorm(projection="embedding").init(KEY, x, jnp.zeros(8, int),
                                                              train=False)
    with pytest.raises(ValueError, match="projection"):
        gnn.ConditionalBatchNorm(projection="mlp").init(KEY, x, jnp.ones((8, 6)), train=False)
