"""`features.sharded_batch_fn`: padding to the device count and per-device execution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo.metrics import features


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
