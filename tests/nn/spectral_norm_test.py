"""Spectral norm with BigGAN-PyTorch `layers.SN` semantics (spec biggan.md §1.3)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo import nn as gnn
from tests.nn import _reference as ref

KEY = jax.random.PRNGKey(0)


def _train_steps(layer, variables, x, steps):
    """`steps` consecutive train-mode forwards; returns the final variables."""
    step = jax.jit(lambda v: layer.apply(v, x, train=True, mutable=["spectral_norm"])[1])
    sn = variables["spectral_norm"]
    for _ in range(steps):
        sn = step({**variables, "spectral_norm": sn})["spectral_norm"]
    return {**variables, "spectral_norm": sn}


def test_dense_first_forward_matches_torch_layout_reference():
    layer = gnn.SNDense(5)
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 7))
    v = layer.init(KEY, x, train=False)
    w, u0 = v["params"]["weight"], v["spectral_norm"]["u0"]
    assert u0.shape == (1, 5) and v["spectral_norm"]["sv0"].shape == (1,)
    # u0 starts as randn, not normalised.
    assert abs(float(np.linalg.norm(u0)) - 1.0) > 1e-3
    sigma, u, _ = ref.sn_step(np.asarray(w).T, u0)  # torch weight [out, in] = kernel.T
    expected = np.asarray(x, np.float64) @ (np.asarray(w) / sigma) + np.asarray(v["params"]["bias"])
    out, new = layer.apply(v, x, train=True, mutable=["spectral_norm"])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new["spectral_norm"]["u0"], u, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new["spectral_norm"]["sv0"], [sigma], rtol=1e-5)


def test_conv_first_forward_matches_torch_layout_reference():
    layer = gnn.SNConv(6, kernel_size=3, padding=1)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 5, 4))
    v = layer.init(KEY, x, train=False)
    w_oihw = ref.hwio_to_oihw(v["params"]["weight"])
    # Torch views the OIHW weight as [out, I*kh*kw]; our flattening order differs, sigma must not.
    sigma, u, _ = ref.sn_step(w_oihw.reshape(6, -1), v["spectral_norm"]["u0"])
    expected = ref.conv2d_nchw(ref.nhwc_to_nchw(x), w_oihw / sigma, pad=1)
    expected += np.asarray(v["params"]["bias"])[None, :, None, None]
    out, new = layer.apply(v, x, train=True, mutable=["spectral_norm"])
    np.testing.assert_allclose(out, ref.nchw_to_nhwc(expected), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new["spectral_norm"]["u0"], u, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new["spectral_norm"]["sv0"], [sigma], rtol=1e-5)


@pytest.mark.parametrize("kind", ["dense", "conv", "embedding"])
def test_train_forwards_converge_to_top_singular_value(kind):
    if kind == "dense":
        layer, x, w_t = gnn.SNDense(6), jnp.ones((2, 9)), lambda p: p.T
    elif kind == "conv":
        layer, x = gnn.SNConv(6, kernel_size=3), jnp.ones((1, 4, 4, 3))
        w_t = lambda p: ref.hwio_to_oihw(p).reshape(6, -1)  # torch weight.view(out, -1)
    else:
        layer, x, w_t = gnn.SNEmbedding(7, 4), jnp.arange(3), lambda p: p  # W_t = the table
    # Random normal weights (orthogonal ones would have all singular values equal).
    v = layer.init(KEY, x, train=False)
    w = jax.random.normal(jax.random.PRNGKey(2), v["params"]["weight"].shape)
    v = {**v, "params": {**v["params"], "weight": w}}
    v = _train_steps(layer, v, x, 60)
    top = np.linalg.svd(np.asarray(w_t(np.asarray(w)), np.float64), compute_uv=False)[0]
    np.testing.assert_allclose(v["spectral_norm"]["sv0"], [top], rtol=1e-4)
    # The normalised weight then has spectral norm 1: check through the layer itself.
    if kind == "embedding":
        table = layer.apply(v, jnp.arange(7), train=False)
        np.testing.assert_allclose(np.linalg.norm(np.asarray(table), 2), 1.0, rtol=1e-4)


def test_eval_keeps_u0_but_normalises_like_train():
    layer = gnn.SNDense(4)
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 5))
    v = layer.init(KEY, x, train=False)
    # Random normal weights: an orthogonal init already has sigma = 1.
    v = {**v, "params": {**v["params"], "weight": jax.random.normal(KEY, (5, 4))}}
    out_eval, state = layer.apply(v, x, train=False, mutable=["spectral_norm"])
    np.testing.assert_array_equal(state["spectral_norm"]["u0"], v["spectral_norm"]["u0"])
    np.testing.assert_array_equal(state["spectral_norm"]["sv0"], v["spectral_norm"]["sv0"])
    # One forward from the same state: eval and train logits are identical (golden README).
    out_train, _ = layer.apply(v, x, train=True, mutable=["spectral_norm"])
    np.testing.assert_allclose(out_eval, out_train, rtol=1e-6)
    sigma, _, _ = ref.sn_step(np.asarray(v["params"]["weight"]).T, v["spectral_norm"]["u0"])
    assert sigma > 1.5
    np.testing.assert_allclose(out_eval, x @ v["params"]["weight"] / sigma, rtol=1e-5, atol=1e-6)


def test_init_returns_the_state_before_any_forward():
    layer = gnn.SNDense(4)
    v = layer.init(KEY, jnp.ones((2, 3)), train=True)
    np.testing.assert_array_equal(v["spectral_norm"]["sv0"], [1.0])


def test_sigma_gradient_flows_through_w_only():
    w = jax.random.normal(jax.random.PRNGKey(1), (8, 5))  # [K, O]
    u0 = jax.random.normal(jax.random.PRNGKey(2), (1, 5))
    _, u, v = gnn.power_iteration(w, u0)
    # d sigma / dW with u, v held constant: outer(v, u) in the [K, O] layout.
    grad_w = jax.grad(lambda w_: gnn.power_iteration(w_, u0)[0])(w)
    np.testing.assert_allclose(grad_w, np.outer(v[0], u[0]), rtol=1e-5, atol=1e-6)
    grad_u = jax.grad(lambda u_: gnn.power_iteration(w, u_)[0])(u0)
    np.testing.assert_array_equal(grad_u, 0.0)


def test_layer_gradient_matches_direct_formula():
    layer = gnn.SNDense(3, use_bias=False)
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 6))
    v = layer.init(KEY, x, train=False)
    w = v["params"]["weight"]
    grad = jax.grad(lambda p: layer.apply({**v, "params": p}, x, train=False).sum())(v["params"])
    # f(W) = sum(x W) / sigma(W), with d sigma / dW = outer(v, u) (u, v constants).
    sigma, u, vv = ref.sn_step(np.asarray(w).T, v["spectral_norm"]["u0"])
    xs = np.asarray(x, np.float64).sum(0)
    f_num = xs @ np.asarray(w, np.float64)
    expected = np.outer(xs, np.ones(3)) / sigma - f_num.sum() / sigma**2 * np.outer(vv, u)
    np.testing.assert_allclose(grad["weight"], expected, rtol=1e-4, atol=1e-5)


def test_num_itrs_train_iterates_and_eval_restarts_from_u0():
    x = jnp.ones((2, 6))
    one, three = gnn.SNDense(4), gnn.SNDense(4, num_itrs=3)
    v = one.init(KEY, x, train=False)
    v = {**v, "params": {**v["params"], "weight": jax.random.normal(KEY, (6, 4))}}
    # Train: three in-place iterations == three single-iteration train forwards.
    _, s3 = three.apply(v, x, train=True, mutable=["spectral_norm"])
    s1 = _train_steps(one, v, x, 3)
    np.testing.assert_allclose(s3["spectral_norm"]["u0"], s1["spectral_norm"]["u0"], rtol=1e-5)
    np.testing.assert_allclose(s3["spectral_norm"]["sv0"], s1["spectral_norm"]["sv0"], rtol=1e-5)
    # Eval: u0 is not updated between iterations, so the output equals one iteration's.
    np.testing.assert_allclose(three.apply(v, x, train=False), one.apply(v, x, train=False),
                               rtol=1e-6)


def test_errors():
    x = jnp.ones((2, 3))
    v = gnn.SNDense(4).init(KEY, x, train=False)
    with pytest.raises(ValueError, match="mutable"):
        gnn.SNDense(4).apply(v, x, train=True)
    with pytest.raises(NotImplementedError, match="num_svs"):
        gnn.SNDense(4, num_svs=2).init(KEY, x, train=False)
    with pytest.raises(ValueError, match="integer"):
        gnn.SNEmbedding(3, 2).init(KEY, jnp.ones((2,)), train=False)
    with pytest.raises(ValueError, match="SNConv: x"):
        gnn.SNConv(4).init(KEY, x, train=False)
