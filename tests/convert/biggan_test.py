"""gan_zoo.convert.biggan: name/layout mapping, round trip and error reporting (no forwards)."""

import numpy as np
import pytest

from gan_zoo.convert import biggan as cb
from gan_zoo.models import biggan, biggan_deep
from gan_zoo.tools import golden as golden_tool

CASES = ["net_biggan_G_res32", "net_biggan_D_res32", "net_biggandeep_G_res32",
         "net_biggandeep_D_res32"]


def _state(case):
    return {**case.prefixed("param"), **case.prefixed("buffer")}


@pytest.mark.parametrize("name", CASES)
def test_round_trip_is_exact(golden, name):
    case = golden_tool.load_case(golden / name)
    model, variables = cb._build(case)
    assert set(variables) == ({"params", "spectral_norm"} if "_D_" in name
                              else {"params", "batch_stats", "spectral_norm"})
    back = cb.flax_to_torch(variables, model)
    state = _state(case)
    assert set(back) == set(state)
    for k, v in state.items():
        np.testing.assert_array_equal(back[k], v, err_msg=k)


def test_layouts(golden):
    case = golden_tool.load_case(golden / "net_biggan_G_res32")
    _, v = cb._build(case)
    p, s = case.prefixed("param"), case.prefixed("buffer")
    np.testing.assert_array_equal(v["params"]["blocks_0_0"]["conv1"]["weight"],
                                  p["blocks.0.0.conv1.weight"].transpose(2, 3, 1, 0))  # HWIO
    np.testing.assert_array_equal(v["params"]["linear"]["weight"], p["linear.weight"].T)
    np.testing.assert_array_equal(v["params"]["shared"]["weight"], p["shared.weight"])  # table
    np.testing.assert_array_equal(v["batch_stats"]["output_layer_0"]["stored_var"],
                                  s["output_layer.0.stored_var"])
    np.testing.assert_array_equal(v["spectral_norm"]["blocks_1_1"]["theta"]["u0"],
                                  s["blocks.1.1.theta.u0"])


def test_names_map_both_ways():
    for name in ["blocks.1.0.bn1.gain.weight", "output_layer.2.u0", "blocks.12.3.conv_sc.bias",
                 "shared.weight", "input_conv.sv0"]:
        col, path = cb.flax_path(name)
        assert cb.torch_name(path) == name
    assert cb.flax_path("blocks.0.0.bn1.stored_mean") == (
        "batch_stats", ("blocks_0_0", "bn1", "stored_mean"))


def test_bad_names_and_shapes_are_listed(golden):
    case = golden_tool.load_case(golden / "net_biggan_D_res32")
    model, _ = cb._build(case)
    state = _state(case)
    del state["blocks.1.0.conv2.weight"]
    state["blocks.9.0.conv1.weight"] = np.zeros((1, 1, 3, 3), np.float32)
    state["linear.bias"] = np.zeros((2,), np.float32)
    with pytest.raises(ValueError) as e:
        cb.torch_to_flax(state, model)
    msg = str(e.value)
    assert "blocks.1.0.conv2.weight" in msg and "blocks.9.0.conv1.weight" in msg
    assert "linear.bias" in msg


def test_model_from_torch_kwargs():
    G = cb.model_from_torch_kwargs("BigGAN.Generator", dict(resolution=128, dim_z=122, hier=True,
                                                            shared_dim=0))
    assert isinstance(G, biggan.Generator)
    assert G.dim_z == 120 and G.shared_dim == 122 and G.out_bn_eps == 1e-5  # torch rounding
    D = cb.model_from_torch_kwargs("BigGANdeep.Discriminator", dict(D_ch=32, D_attn="32"))
    assert isinstance(D, biggan_deep.Discriminator) and D.resolution == 128
    with pytest.raises(ValueError, match="norm_style"):
        cb.model_from_torch_kwargs("BigGAN.Generator", dict(norm_style="in"))
    with pytest.warns(UserWarning, match="bogus"):
        cb.model_from_torch_kwargs("BigGAN.Discriminator", dict(bogus=1))
