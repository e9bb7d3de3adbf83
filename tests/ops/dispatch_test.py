"""The impl switch: explicit choices, the 'auto' policy and errors."""

import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo import ops
from gan_zoo.ops import dispatch


def test_auto_is_xla_on_cpu_and_explicit_pallas_routes_to_the_kernel():
    assert dispatch.resolve_impl("auto", "upfirdn2d") == "xla"
    assert dispatch.resolve_impl("pallas", "upfirdn2d") == "pallas"
    x = jnp.arange(2 * 6 * 6 * 3, dtype=jnp.float32).reshape(2, 6, 6, 3)
    f = ops.setup_filter([1, 3, 3, 1])
    a = ops.upfirdn2d(x, f, up=2, padding=2, impl="xla")
    b = ops.upfirdn2d(x, f, up=2, padding=2, impl="pallas")
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_auto_only_picks_verified_kernels(monkeypatch):
    monkeypatch.setattr(dispatch.jax, "default_backend", lambda: "gpu")
    monkeypatch.setitem(dispatch.VERIFIED_BACKENDS, "upfirdn2d", ())
    assert dispatch.resolve_impl("auto", "upfirdn2d") == "xla"
    monkeypatch.setitem(dispatch.VERIFIED_BACKENDS, "upfirdn2d", ("gpu",))
    assert dispatch.resolve_impl("auto", "upfirdn2d") == "pallas"
    assert dispatch.resolve_impl("auto", "minibatch_std") == "xla"  # No kernel for it.


def test_default_impl_and_errors():
    dispatch.set_default_impl("pallas")
    try:
        assert dispatch.resolve_impl("auto", "upfirdn2d") == "pallas"
    finally:
        dispatch.set_default_impl("auto")
    with pytest.raises(ValueError, match="impl must be one of"):
        dispatch.resolve_impl("cuda", "upfirdn2d")
    with pytest.raises(NotImplementedError, match="no Pallas kernel"):
        dispatch.kernel("minibatch_std")
