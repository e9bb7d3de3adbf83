"""The kernels run inside jax.shard_map over the batch when a mesh is active (8 CPU devices)."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from gan_zoo import ops
from kernels_pallas import filtered_lrelu, modulated_conv2d, upfirdn2d
from tests.kernels_pallas._util import RTOL, RTOL_PARAM, assert_close, rand


def _mesh():
    assert jax.device_count() >= 8, "tests/conftest.py should give 8 CPU devices"
    return jax.make_mesh((8,), ("data",))


def test_modulated_conv2d_sharded_grad_equals_reference():
    rng = np.random.default_rng(0)
    x, w, s = rand(rng, (8, 6, 6, 3)), rand(rng, (3, 3, 3, 4)), rand(rng, (8, 3))
    r = rand(rng, (8, 6, 6, 4))
    loss = lambda fn: (lambda x, w, s: jnp.sum(fn(x, w, s, padding=1) * r))
    want = jax.grad(loss(lambda *a, **k: ops.modulated_conv2d(*a, impl="xla", **k)),
                    (0, 1, 2))(x, w, s)
    mesh = _mesh()
    with jax.set_mesh(mesh):
        batch = NamedSharding(mesh, P("data"))
        xs, ss = jax.device_put(x, batch), jax.device_put(s, batch)
        step = jax.jit(jax.grad(loss(modulated_conv2d.modulated_conv2d), (0, 1, 2)))
        assert "shard_map" in str(jax.make_jaxpr(step)(xs, w, ss))
        got = step(xs, w, ss)
    for i, (g, wnt) in enumerate(zip(got, want)):
        assert_close(g, wnt, RTOL if i == 0 else RTOL_PARAM, f"grad {i}")
    assert got[0].sharding.spec[0] == "data"


def test_filtered_lrelu_and_upfirdn2d_sharded_forward():
    rng = np.random.default_rng(1)
    x, b, f = rand(rng, (8, 10, 10, 2)), rand(rng, (2,)), rand(rng, (6,), low=0.1)
    kw = dict(up=2, down=2, padding=[4, 3, 4, 3], clamp=1.0)
    want_fl = ops.filtered_lrelu(x, f, f, b, impl="xla", **kw)
    want_up = ops.upfirdn2d(x, f, up=2, padding=[3, 2, 3, 2], impl="xla")
    with jax.set_mesh(_mesh()):
        got_fl = jax.jit(lambda x, b: filtered_lrelu.filtered_lrelu(x, f, f, b, **kw))(x, b)
        got_up = jax.jit(lambda x: upfirdn2d.upfirdn2d(x, f, up=2, padding=[3, 2, 3, 2]))(x)
        # A batch the mesh does not divide runs unsharded, still correct.
        got_odd = upfirdn2d.upfirdn2d(x[:3], f, up=2, padding=[3, 2, 3, 2])
    assert_close(got_fl, want_fl, RTOL, "filtered_lrelu")
    assert_close(got_up, want_up, RTOL, "upfirdn2d")
    assert_close(got_odd, want_up[:3], RTOL, "upfirdn2d, N=3")
