"""`features.sharded_batch_fn`: padding to the device count, per-device execution, chunked calls
and the CPU compile options."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo.metrics import features
from gan_zoo.ops.conv2d_resample import EIGEN_CONV_OPTIONS


def _shard_index(params, x):
    """Each row -> params + the index of the device (shard) that computed it."""
    return jnp.zeros(x.shape[:1]) + jax.lax.axis_index("data") + params


@pytest.mark.parametrize("n", [3, 8, 13])
def test_per_shard_runs_each_devices_rows_on_that_device(n):
    mesh = features.data_mesh()
    assert mesh.shape["data"] == 8  # tests/conftest.py: 8 simulated CPU devices
    out = features.sharded_batch_fn(_shard_index, mesh, np.float32(0.5), per_shard=True)(
        np.zeros((n, 2), np.float32))
    size = max(8, 1 << (n - 1).bit_length())  # padded: power of two, multiple of 8
    expected = np.repeat(np.arange(8), size // 8)[:n] + 0.5  # contiguous rows per device
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("n, shards, max_chunks, sizes", [
    (50, 1, 1, [64]), (50, 1, 3, [32, 16, 2]), (64, 1, 3, [64]), (63, 1, 3, [32, 16, 16]),
    (3, 8, 3, [8]), (13, 8, 3, [8, 8]), (100, 8, 3, [64, 32, 8]), (7, 6, 2, [12]),
])
def test_chunk_sizes(n, shards, max_chunks, sizes):
    assert features.chunk_sizes(n, shards, max_chunks) == sizes
    assert all(s % shards == 0 for s in sizes) and sum(sizes[:-1]) < n <= sum(sizes)


def test_chunk_sizes_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_chunks must be >= 1"):
        features.chunk_sizes(5, 1, 0)


@pytest.mark.parametrize("n", [5, 13])
def test_chunked_calls_equal_one_padded_call(n):
    """Rows computed in several power-of-two calls come back in order, padding stripped."""
    fn = lambda p, x: {"a": x.sum(axis=1) * p, "b": x[:, :1] + p}
    x = np.random.default_rng(n).normal(size=(n, 3)).astype(np.float32)
    mesh = features.data_mesh()
    one = features.sharded_batch_fn(fn, mesh, np.float32(2.0))(x)
    many = features.sharded_batch_fn(fn, mesh, np.float32(2.0), max_chunks=3)(x)
    assert one["a"].shape == many["a"].shape == (n,) and many["b"].shape == (n, 1)
    np.testing.assert_allclose(many["a"], x.sum(axis=1) * 2, rtol=1e-6)
    for k in one:
        np.testing.assert_array_equal(one[k], many[k])


def test_cpu_compiler_options():
    mesh = features.data_mesh()
    assert features.cpu_compiler_options(mesh, ()) is None
    assert features.cpu_compiler_options(mesh, (("xla_cpu_no_such_flag_h8", ""),)) is None
    opts = features.cpu_compiler_options(mesh)
    # None: a jaxlib without the flag
    assert opts in (None, dict(EIGEN_CONV_OPTIONS))


def test_eigen_convs_equal_default_convs():
    """The CPU compile options change which library runs the conv, not its value."""
    def conv(k, x):
        return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 17, 17, 32)).astype(np.float32)
    k = rng.normal(size=(3, 3, 32, 48)).astype(np.float32)
    mesh = features.data_mesh(jax.devices()[:1])
    opts = features.cpu_compiler_options(mesh)
    want = features.sharded_batch_fn(conv, mesh, k)(x)
    got = features.sharded_batch_fn(conv, mesh, k, compiler_options=opts)(x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_inception_features_match_the_golden(golden):
    """The metrics path (chunked calls, CPU compile options) against torch-fidelity's pool3 and
    sFID features of the golden case (rel-L2 within the golden's network tolerance)."""
    from gan_zoo.convert import inception  # noqa: PLC0415
    from gan_zoo.tools import golden as golden_tool  # noqa: PLC0415

    with np.load(golden / "feat_inception_fid.npz") as d:
        images = d["input/img_s64"].transpose(0, 2, 3, 1)  # NCHW -> NHWC
        want = {"pool3": d["output/s64_pool3_2048"], "sfid": d["output/s64_sfid_spatial_2023"]}
    variables = inception.load_inception(golden / "feat_inception_fid.npz")
    mesh = features.data_mesh(jax.devices()[:1])
    got = features.InceptionFeatures(variables, ("pool3", "sfid"), mesh)(images)
    for k, ref in want.items():
        err = np.linalg.norm(got[k] - ref) / np.linalg.norm(ref)
        assert err <= golden_tool.TOL_NET_OUT, (k, err)
