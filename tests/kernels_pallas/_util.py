"""Shared helpers of the kernel tests: kernel-vs-reference comparison of forward and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

# Relative tolerances (max abs error / max abs value): outputs and input gradients, and the
# looser one for weight/style/bias gradients (long reductions, different summation order).
RTOL = 2e-5
RTOL_PARAM = 1e-4


class KernelTestBase:
    """Runs on the compiled kernel (GPU/TPU); the *InterpretTest subclass runs interpret mode."""
    interpret = None

    @pytest.fixture(autouse=True)
    def _backend(self):
        if self.interpret is None and jax.default_backend() == "cpu":
            pytest.skip("compiled Pallas needs a GPU/TPU; the Interpret subclass covers CPU")


def rand(rng, shape, low=None):
    a = rng.uniform(low, 1.0, shape) if low is not None else rng.standard_normal(shape)
    return jnp.asarray(a, jnp.float32)


def assert_close(got, want, rtol, what=""):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = max(np.max(np.abs(want)), 1e-6)
    err = np.max(np.abs(got - want)) / scale
    assert err <= rtol, f"{what}: max relative error {err:.2e} > {rtol:.0e}"


def check_fwd_grad(kernel_fn, ref_fn, args, argnums, rng, param_argnums=()):
    """kernel == reference in output and in grad of sum(out * R) w.r.t. `argnums`."""
    want = ref_fn(*args)
    got = kernel_fn(*args)
    assert_close(got, want, RTOL, "output")
    r = rand(rng, want.shape)
    loss = lambda fn: (lambda *a: jnp.sum(fn(*a) * r))
    g_want = jax.grad(loss(ref_fn), argnums)(*args)
    g_got = jax.grad(loss(kernel_fn), argnums)(*args)
    for i, gw, gg in zip(argnums, g_want, g_got):
        assert_close(gg, gw, RTOL_PARAM if i in param_argnums else RTOL, f"grad of arg {i}")
