"""gan_zoo.nn against the BigGAN-PyTorch golden vectors (../shared/golden, net_biggan_D_res32).

Checks the SN buffers after one train forward, and the attention block on the recorded eval-mode
input/output of D's first attention block (batch element 0; attention is per-sample).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo import nn as gnn
from tests.nn import _reference as ref

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def d_case(golden):
    with np.load(golden / "net_biggan_D_res32.npz") as z:
        return dict(z)


def _to_flax(w):
    """torch weight -> gan_zoo layout: OIHW -> HWIO, [out, in] -> [in, out]."""
    return w.transpose(2, 3, 1, 0) if w.ndim == 4 else w.T


def _sn_vars(case, name, table=False):
    w = case[f"param/{name}.weight"]
    params = {"weight": w if table else _to_flax(w)}
    sn = {k: case[f"buffer/{name}.{k}"] for k in ("u0", "sv0")}
    return {"params": params, "spectral_norm": sn}


@pytest.mark.parametrize("name,layer,x", [
    ("blocks.0.0.conv1", gnn.SNConv(64, use_bias=False), jnp.zeros((1, 4, 4, 3))),
    ("blocks.1.0.conv_sc", gnn.SNConv(64, 1, use_bias=False), jnp.zeros((1, 4, 4, 64))),
    ("linear", gnn.SNDense(1, use_bias=False), jnp.zeros((1, 64))),
    ("embed", gnn.SNEmbedding(10, 64), jnp.arange(10)),
])
def test_sn_buffers_after_one_train_forward(d_case, name, layer, x):
    v = _sn_vars(d_case, name, table=name == "embed")
    _, state = layer.apply(v, x, train=True, mutable=["spectral_norm"])
    for k in ("u0", "sv0"):
        expected = d_case[f"buffer_after_train/{name}.{k}"]
        np.testing.assert_allclose(state["spectral_norm"][k], expected, rtol=1e-5, atol=1e-6,
                                   err_msg=f"{name}.{k}")


def test_attention_block_matches_recorded_output(d_case):
    prefix = "blocks.0.1"
    convs = ("theta", "phi", "g", "o")
    variables = {"params": {"gamma": jnp.asarray(d_case[f"param/{prefix}.gamma"])},
                 "spectral_norm": {}}
    for c in convs:
        v = _sn_vars(d_case, f"{prefix}.{c}")
        variables["params"][c] = v["params"]
        variables["spectral_norm"][c] = v["spectral_norm"]
    x = ref.nchw_to_nhwc(d_case["intermediate/blocks.0.0"])
    expected = ref.nchw_to_nhwc(d_case[f"intermediate/{prefix}"])
    out = gnn.Attention().apply(variables, x, train=False)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5 * max(1.0, scale))
    # A train forward gives the same output and writes back the recorded u0/sv0.
    out_t, state = gnn.Attention().apply(variables, x, train=True, mutable=["spectral_norm"])
    np.testing.assert_allclose(out_t, out, rtol=1e-6, atol=1e-6)
    for c in convs:
        np.testing.assert_allclose(state["spectral_norm"][c]["u0"],
                                   d_case[f"buffer_after_train/{prefix}.{c}.u0"], rtol=1e-5,
                                   atol=1e-6)
