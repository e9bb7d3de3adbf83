"""prefetch_to_devices: order, finite streams, errors and closing a stuck stream."""

import threading
import time

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from gan_zoo.data import pipeline


def _sharding():
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    return NamedSharding(mesh, PartitionSpec("data"))


def test_batches_arrive_in_order_and_a_finite_stream_ends():
    host = ({"x": np.full((2,), i, np.float32)} for i in range(5))
    got = [float(b["x"][0]) for b in pipeline.prefetch_to_devices(host, _sharding(), 2)]
    assert got == [0, 1, 2, 3, 4]


def test_worker_errors_reach_the_consumer():
    def host():
        yield {"x": np.zeros((2,), np.float32)}
        raise OSError("disk gone")

    it = pipeline.prefetch_to_devices(host(), _sharding(), 2)
    next(it)
    with pytest.raises(OSError, match="disk gone"):
        next(it)


def test_close_does_not_hang_on_a_stuck_stream(monkeypatch):
    monkeypatch.setattr(pipeline, "CLOSE_TIMEOUT_S", 0.5)
    release = threading.Event()

    def host():
        yield {"x": np.zeros((2,), np.float32)}
        release.wait(30)  # a read that hangs
        yield {"x": np.ones((2,), np.float32)}

    it = pipeline.prefetch_to_devices(host(), _sharding(), 1)
    next(it)
    t0 = time.monotonic()
    it.close()
    assert time.monotonic() - t0 < 5
    release.set()
