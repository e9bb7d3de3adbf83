"""BigGAN / SA-GAN self-attention equals the torch formulas in NCHW (spec biggan.md §1.6)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo import nn as gnn
from tests.nn import _reference as ref

KEY = jax.random.PRNGKey(0)


def _np_attention(x_nchw, weights, u0s, gamma):
    """layers.Attention.forward in NCHW with SN 1x1 convs. weights: name -> OIHW."""
    n, c, h, w = x_nchw.shape

    def conv(name, inp):
        sigma, _, _ = ref.sn_step(weights[name].reshape(weights[name].shape[0], -1), u0s[name])
        return ref.conv2d_nchw(inp, weights[name] / sigma, pad=0)

    def pool(t):  # F.max_pool2d(t, [2, 2])
        return t.reshape(n, t.shape[1], h // 2, 2, w // 2, 2).max(axis=(3, 5))

    theta = conv("theta", x_nchw).reshape(n, c // 8, h * w)
    phi = pool(conv("phi", x_nchw)).reshape(n, c // 8, h * w // 4)
    g = pool(conv("g", x_nchw)).reshape(n, c // 2, h * w // 4)
    logits = np.einsum("ncq,nck->nqk", theta, phi)  # bmm(theta^T, phi)
    beta = np.exp(logits - logits.max(-1, keepdims=True))
    beta /= beta.sum(-1, keepdims=True)
    o = conv("o", np.einsum("nck,nqk->ncq", g, beta).reshape(n, c // 2, h, w))
    return gamma * o + x_nchw


def test_attention_matches_torch_layout_reference():
    attn = gnn.Attention(weight_init=jax.nn.initializers.normal(0.3))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 6, 16))
    v = attn.init(KEY, x, train=False)
    params = v["params"]
    assert set(params) == {"theta", "phi", "g", "o", "gamma"}
    assert params["gamma"].shape == () and float(params["gamma"]) == 0.0
    assert params["g"]["weight"].shape == (1, 1, 16, 8) and "bias" not in params["o"]
    np.testing.assert_array_equal(attn.apply(v, x, train=False), x)  # gamma = 0 at init
    v = {**v, "params": {**params, "gamma": jnp.float32(0.7)}}
    weights = {k: ref.hwio_to_oihw(params[k]["weight"]) for k in ("theta", "phi", "g", "o")}
    u0s = {k: v["spectral_norm"][k]["u0"] for k in weights}
    expected = _np_attention(ref.nhwc_to_nchw(x), weights, u0s, 0.7)
    out, state = attn.apply(v, x, train=True, mutable=["spectral_norm"])
    np.testing.assert_allclose(out, ref.nchw_to_nhwc(expected), rtol=1e-4, atol=1e-5)
    assert not np.allclose(out, x, atol=1e-2)
    assert not np.allclose(state["spectral_norm"]["o"]["u0"], u0s["o"])


def test_attention_rejects_bad_shapes():
    with pytest.raises(ValueError, match="divisible by 8"):
        gnn.Attention().init(KEY, jnp.ones((1, 4, 4, 12)), train=False)
    with pytest.raises(ValueError, match="even H, W"):
        gnn.Attention().init(KEY, jnp.ones((1, 3, 4, 16)), train=False)
    with pytest.raises(ValueError, match="Attention: x"):
        gnn.Attention().init(KEY, jnp.ones((4, 16)), train=False)
