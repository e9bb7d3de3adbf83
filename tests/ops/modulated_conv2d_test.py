"""Modulated conv execution choice: fused_modconv True / False / "auto" (the per-backend table),
StyleGAN3's unfused path against its fused path and the official goldens, and every noise shape
the official op accepts."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo import ops
from gan_zoo.tools import golden as harness
from gan_zoo.tools import golden_ops

mc = importlib.import_module("gan_zoo.ops.modulated_conv2d")  # the module (ops exports the fn)


def _inputs(n=3, h=6, i=4, o=5, k=3, seed=0):
    kx, kw, ks = jax.random.split(jax.random.PRNGKey(seed), 3)
    return (jax.random.normal(kx, (n, h, h, i)), jax.random.normal(kw, (k, k, i, o)),
            jax.random.normal(ks, (n, i)) + 1.0)


# ----- The "auto" rule -----

@pytest.mark.parametrize("backend,dtype,n,fused", [
    ("cpu", "float32", 1, False), ("cpu", "float32", 8, False), ("cpu", "bfloat16", 1, False),
    # GPU / TPU: the official inference rule, fused when float32 or N == 1.
    ("gpu", "float32", 1, True), ("gpu", "float32", 64, True), ("gpu", "float16", 1, True),
    ("gpu", "float16", 2, False), ("tpu", "bfloat16", 4, False), ("tpu", "float32", 4, True)])
def test_auto_rule_per_backend_dtype_and_batch(backend, dtype, n, fused):
    for setting in ("auto", None):
        assert mc.use_fused(setting, (n, 8, 8, 4), dtype, backend) is fused
    assert mc.use_fused(True, (n, 8, 8, 4), dtype, backend) is True
    assert mc.use_fused(False, (n, 8, 8, 4), dtype, backend) is False


@pytest.mark.parametrize("bad", ["fused", 1, 0.5])
def test_bad_fused_modconv_names_the_argument(bad):
    x, w, s = _inputs()
    with pytest.raises(ValueError, match="fused_modconv"):
        ops.modulated_conv2d(x, w, s, padding=1, fused_modconv=bad)


# ----- StyleGAN3: unfused == fused -----

@pytest.mark.parametrize("demodulate,gain", [(True, None), (True, "scalar"), (False, "per_i"),
                                             (True, "per_ni")])
def test_sg3_unfused_equals_fused_forward_and_gradient(demodulate, gain):
    x, w, s = _inputs()
    g = {None: None, "scalar": jnp.float32(0.7), "per_i": jnp.linspace(0.5, 2.0, 4),
         "per_ni": jax.random.uniform(jax.random.PRNGKey(3), (3, 4)) + 0.5}[gain]

    def f(fused):
        fn = lambda x, w, s: ops.modulated_conv2d_sg3(  # noqa: E731
            x, w, s, demodulate=demodulate, padding=2, input_gain=g, fused_modconv=fused)
        r = jax.random.normal(jax.random.PRNGKey(4), fn(x, w, s).shape)
        return fn(x, w, s), jax.grad(lambda *a: jnp.sum(fn(*a) * r), argnums=(0, 1, 2))(x, w, s)

    (a, ga), (b, gb) = f(True), f(False)
    assert a.shape == (3, 8, 8, 5)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    for u, v in zip(ga, gb):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("name", ["op_modconv3_01", "op_modconv3_02", "op_modconv3_04"])
def test_sg3_both_executions_match_the_goldens(golden, name, fused):
    case = harness.load_case(golden / name)
    a = case.meta["args"]
    fn = lambda x, w, s, input_gain: ops.modulated_conv2d_sg3(  # noqa: E731
        x, w, s, input_gain=input_gain, fused_modconv=fused, **a)
    got = golden_ops.differentiate(case, fn, golden_ops._inputs(case, "x", "w", "s", "input_gain"),
                                   {"x": "image", "w": "oihw"})
    keys = [k for k in case.arrays if k.startswith(harness.COMPARED_PREFIXES)]
    assert "output/out" in keys
    for k in keys:
        rel, _ = harness.compare(k, got[k], case.arrays[k])
        assert rel <= harness.TOL_OP, (k, rel)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("name", ["op_modconv2_01", "op_modconv2_03", "op_modconv2_07"])
def test_sg2_both_executions_match_the_goldens(golden, name, fused):
    case = harness.load_case(golden / name)
    case.meta["args"] = dict(case.meta["args"], fused_modconv=fused)
    got = golden_ops.run_modconv2(case, impl="xla")
    for k in [k for k in case.arrays if k.startswith(harness.COMPARED_PREFIXES)]:
        rel, _ = harness.compare(k, got[k], case.arrays[k])
        assert rel <= harness.TOL_OP, (k, rel)


# ----- Noise shapes -----

@pytest.mark.parametrize("shape", ["nhw1", "hw", "1hw1", "nhw", "1hw", "nhwo"])
@pytest.mark.parametrize("fused", [True, False])
def test_noise_in_every_official_shape(shape, fused):
    x, w, s = _inputs()
    n, h, o = 3, 6, 5
    full = {"nhw1": (n, h, h, 1), "hw": (1, h, h, 1), "1hw1": (1, h, h, 1),
            "nhw": (n, h, h, 1), "1hw": (1, h, h, 1), "nhwo": (n, h, h, o)}[shape]
    noise4 = jax.random.normal(jax.random.PRNGKey(5), full)
    given = {"hw": noise4[0, :, :, 0], "nhw": noise4[..., 0], "1hw": noise4[..., 0]}.get(
        shape, noise4)
    base = ops.modulated_conv2d(x, w, s, padding=1, fused_modconv=fused)
    out = ops.modulated_conv2d(x, w, s, noise=given, padding=1, fused_modconv=fused)
    np.testing.assert_allclose(out, base + noise4, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(6, 5), (2, 6, 6, 1), (3, 6, 6, 2), (3, 1, 6, 6)])
def test_bad_noise_shape_is_named(shape):
    x, w, s = _inputs()
    with pytest.raises(ValueError, match="noise"):
        ops.modulated_conv2d(x, w, s, noise=jnp.zeros(shape), padding=1)


def test_demod_coefficients_of_equals_the_per_sample_weight_formula():
    # StyleGAN2 eq. 3 on explicitly modulated weights, in float64 NumPy, vs the factored form
    # the unfused execution uses (no [N, kh, kw, I, O] tensor).
    rng = np.random.default_rng(0)
    w, s = rng.normal(size=(3, 3, 24, 16)), rng.normal(size=(5, 24))
    direct = 1 / np.sqrt(np.sum((w[None] * s[:, None, None, :, None]) ** 2, axis=(1, 2, 3)) + 1e-8)
    got = mc.demod_coefficients_of(jnp.float32(w), jnp.float32(s))
    assert got.shape == (5, 16)
    np.testing.assert_allclose(np.asarray(got), direct, rtol=2e-6)
