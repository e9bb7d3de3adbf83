"""timm ViTs (DeiT distilled, DINO) and the CLIP image tower: goldens, parameter counts, position-
embedding resize at non-224 sizes, loader errors."""
import io
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

from gan_zoo.convert import vit as vit_convert
from gan_zoo.feature_nets import vit
from gan_zoo.tools import golden as golden_tool

CASES = ["feat_deit_base_distilled", "feat_deit_small_distilled_cls", "feat_dino_vits16"]


@pytest.mark.parametrize("case", CASES)
def test_golden(golden, case):
    """The harness' runner for the case: every output (and grad/x) within the harness' relative-L2
    tolerance and within the README's suggested_atol (rtol 0)."""
    case = golden_tool.load_case(golden / case)
    got = golden_tool.runner_for(case.meta)(case, impl="xla")
    atol = case.meta["tolerances"]["suggested_atol"]
    keys = [k for k in case.arrays if k.startswith(golden_tool.COMPARED_PREFIXES)]
    assert keys and set(keys) <= set(got) and set(keys) <= set(atol)
    for key in keys:
        rel, err = golden_tool.compare(key, got[key], case.arrays[key])
        assert rel <= golden_tool.tolerance(case, key), f"{key}: rel_l2 {rel:.2e}"
        assert err <= atol[key], f"{key}: max abs {err:.2e} > {atol[key]}"


def test_golden_cli(golden):
    out = io.StringIO()
    passed, failed = golden_tool.run([golden / CASES[0]], out=out)
    assert (passed, failed) == (1, 0), out.getvalue()


# timm 1.0.31 / open_clip 3.3.0 counts (issue #12).
PARAM_COUNTS = {
    "deit_base_distilled_patch16_224": 87_338_192,
    "deit_small_distilled_patch16_224": 22_436_432,
    "vit_small_patch16_224.dino": 21_665_664,
    "clip_vit_l_14_openai": 303_966_208,
}


@pytest.mark.parametrize("variant", sorted(PARAM_COUNTS))
def test_param_count(variant):
    assert vit.param_count(vit.make(variant)) == PARAM_COUNTS[variant]


# ----------------------------------------------------------------------------------------------
# Position embedding at other input sizes (StyleGAN-XL / StyleGAN-T forward_flex).

def test_bilinear_taps_equal_torch():
    """Weights of torch F.interpolate(bilinear, align_corners=False) on basis vectors (recorded
    from torch 2.x): 3 -> 5 and 5 -> 2."""
    up = np.array([[1, 0, 0], [.6, .4, 0], [0, 1, 0], [0, .4, .6], [0, 0, 1]], np.float32)
    down = np.array([[.25, .75, 0, 0, 0], [0, 0, 0, .75, .25]], np.float32)
    for want in (up, down):
        basis = jnp.eye(want.shape[1])[:, None, :]  # [in, 1, C=in]: column j = basis vector j
        got = vit.resize_bilinear(basis, (want.shape[0], 1))[:, 0, :]
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-6)


@pytest.mark.parametrize("hw", [(20, 20), (8, 8), (10, 17), (14, 14)])
def test_resize_pos_embed(hw):
    """Prefix rows kept; grid resized like jax.image.resize(linear, antialias=False), which uses
    the same half-pixel convention as torch; exact identity at the trained grid."""
    pos = jax.random.normal(jax.random.PRNGKey(0), (2 + 14 * 14, 6))
    got = np.asarray(vit.resize_pos_embed(pos, 2, hw))
    np.testing.assert_array_equal(got[:2], pos[:2])
    want = jax.image.resize(pos[2:].reshape(14, 14, 6), hw + (6,), "linear", antialias=False)
    np.testing.assert_allclose(got[2:], np.asarray(want).reshape(-1, 6), atol=1e-5)
    if hw == (14, 14):
        assert vit.resize_pos_embed(pos, 2, hw) is pos


def test_non_224_input():
    """A 167x247 input (10x15 tokens: the remainder is dropped like torch's stride-16 conv)
    adds the bilinearly resized position embedding to the patch tokens."""
    module = vit.make("vit_small_patch16_224.dino", width=16, depth=1, heads=2)
    variables = jax.jit(module.init)(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)))
    x = jax.random.normal(jax.random.PRNGKey(1), (1, 167, 247, 3))  # 10x15 full patches
    out, aux = jax.jit(module.apply)(variables, x)
    assert aux["patch_embed"].shape == (1, 150, 16) and out.shape == (1, 16)
    pos = variables["params"]["pos_embed"][0]
    grid = jax.image.resize(pos[1:].reshape(14, 14, -1), (10, 15, 16), "linear",
                            antialias=False).reshape(150, 16)
    want = jnp.concatenate([variables["params"]["cls_token"][0] + pos[:1],
                            aux["patch_embed"][0] + grid])
    np.testing.assert_allclose(aux["tokens_after_pos_embed"][0], want, atol=1e-5)
    assert [b.shape for b in aux["blocks"]] == [(1, 151, 16)]


# ----------------------------------------------------------------------------------------------
# Loader.

def _deit_sd(golden):
    return vit_convert.read_state_dict(golden / "feat_deit_base_distilled.npz")


def test_loader_safetensors_roundtrip(golden, tmp_path):
    sd = _deit_sd(golden)
    save_file(sd, str(tmp_path / "model.safetensors"))
    module, variables = vit_convert.load_vit(tmp_path / "model.safetensors",
                                             "deit_base_distilled_patch16_224",
                                             width=64, depth=4, heads=4)
    p = variables["params"]
    np.testing.assert_array_equal(p["blocks_2"]["attn"]["qkv"]["kernel"],
                                  sd["blocks.2.attn.qkv.weight"].T)
    np.testing.assert_array_equal(p["patch_embed"]["kernel"],
                                  sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(p["head_dist"]["bias"], sd["head_dist.bias"])
    assert module.num_prefix == 2


def test_loader_errors(golden, tmp_path):
    sd = _deit_sd(golden)
    module = vit.make("deit_base_distilled_patch16_224", width=64, depth=4, heads=4)
    bad = dict(sd)
    del bad["blocks.1.mlp.fc2.bias"]
    with pytest.raises(ValueError, match=r"bad\.npz.*first missing name 'blocks.1.mlp.fc2.bias'"):
        vit_convert.convert_state_dict(bad, module, source="bad.npz")
    bad = dict(sd, **{"blocks.9.norm1.weight": np.ones(64, np.float32)})
    with pytest.raises(ValueError, match="first unexpected name 'blocks.9.norm1.weight'"):
        vit_convert.convert_state_dict(bad, module)
    bad = dict(sd, **{"pos_embed": np.zeros((1, 197, 64), np.float32)})
    with pytest.raises(ValueError, match=r"pos_embed has shape \(1, 197, 64\), expected "
                                         r"\(1, 198, 64\)"):
        vit_convert.convert_state_dict(bad, module)
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        vit_convert.read_state_dict(tmp_path / "nope.safetensors")
    (tmp_path / "w.pth").write_bytes(b"\x80\x02")
    with pytest.raises(ValueError, match="w.pth is not .safetensors or .npz"):
        vit_convert.read_state_dict(tmp_path / "w.pth")


def test_golden_arch_rejects_approximate_gelu(golden):
    arch = json.loads((golden / "feat_dino_vits16.json").read_text())["arch"]
    arch["gelu"]["approximate"] = ["tanh"]
    with pytest.raises(ValueError, match="exact GELU"):
        vit_convert.module_from_arch(arch)


def test_bad_input_shape():
    module = vit.make("_test")
    with pytest.raises(ValueError, match="NHWC.*shape \\(1, 3, 32, 32\\)"):
        module.init(jax.random.PRNGKey(0), jnp.zeros((1, 3, 32, 32)))
