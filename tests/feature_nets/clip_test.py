"""open_clip CLIP: golden (text and image towers), ViT-L/14 parameter counts, causal pooling,
loader, the StyleGAN-T bicubic preprocessing."""
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

from gan_zoo.convert import clip as clip_convert
from gan_zoo.feature_nets import clip
from gan_zoo.tools import golden as golden_tool

CASE = "feat_clip_small"


@pytest.fixture(scope="module")
def small(golden):
    """(case, model, variables) of the golden case."""
    case = golden_tool.load_case(golden / CASE)
    model = clip_convert.model_from_config(case.meta["model_config"])
    return case, model, clip_convert.convert_state_dict(case.prefixed("param"), model)


def test_golden(small):
    """Every stored output within the harness' relative L2 and the README's suggested_atol;
    the pooled positions exactly."""
    case, _, _ = small
    got = golden_tool.runner_for(case.meta)(case, impl="xla")
    atol = case.meta["tolerances"]["suggested_atol"]
    keys = [k for k in case.arrays if k.startswith(golden_tool.COMPARED_PREFIXES)]
    assert len(keys) == 11 and set(keys) <= set(got)
    np.testing.assert_array_equal(got["output/text_eot_index"], [6, 18, 76])
    for key in set(keys) - {"output/text_eot_index"}:
        rel, err = golden_tool.compare(key, got[key], case.arrays[key])
        assert rel <= golden_tool.tolerance(case, key), f"{key}: rel_l2 {rel:.2e}"
        assert err <= atol[key], f"{key}: max abs {err:.2e} > {atol[key]}"


def test_golden_cli(golden):
    out = io.StringIO()
    assert golden_tool.run([golden / CASE], out=out) == (1, 0), out.getvalue()


def test_vit_l_14_param_counts():
    """open_clip 3.3.0 ViT-L-14: image tower 303,966,208; text side (token and position
    embeddings, blocks, ln_final, projection, logit scale) 123,650,305."""
    params = clip.init_shapes(clip.make("ViT-L-14"))["params"]
    count = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))
    assert count(params["visual"]) == 303_966_208
    assert count(params["text"]) + count(params["logit_scale"]) == 123_650_305


def test_text_pooling_is_causal(small):
    """The end-token row sees only the tokens before it: ids after it, or cutting the sequence
    right after it, leave the official embedding unchanged."""
    case, model, variables = small
    tokens = case.arrays["input/text_tokens"][:2].astype(np.int32)
    want = case.arrays["output/text_embedding"][:2]
    encode = jax.jit(lambda t: model.apply(variables, t, method="encode_text"))
    noisy = tokens.copy()
    noisy[0, 7:] = np.arange(1000, 1070)  # the short prompt's padding, now other ids < EOT
    np.testing.assert_allclose(encode(noisy), want, atol=2e-5)
    np.testing.assert_allclose(encode(tokens[:, :19]), want, atol=2e-5)  # EOT at 6 and 18


def test_text_rejects_long_or_flat_tokens(small):
    _, model, variables = small
    for bad in (np.zeros((1, 78), np.int32), np.zeros((77,), np.int32)):
        with pytest.raises(ValueError, match="TextTransformer: expected int tokens"):
            model.apply(variables, bad, method="encode_text")


def test_loader_safetensors_and_errors(small, tmp_path):
    case, model, variables = small
    sd = dict(case.prefixed("param"))
    sd_mask = dict(sd, attn_mask=np.zeros((77, 77), np.float32))  # exported by some tools
    save_file(sd_mask, str(tmp_path / "open_clip_model.safetensors"))
    _, loaded = clip_convert.load_clip(tmp_path / "open_clip_model.safetensors", model=model)
    flat = lambda v: jax.tree_util.tree_leaves_with_path(v)
    for (path, a), (_, b) in zip(flat(loaded), flat(variables)):
        np.testing.assert_array_equal(a, b, err_msg=str(path))
    np.testing.assert_array_equal(loaded["params"]["visual"]["cls_token"][0, 0],
                                  sd["visual.class_embedding"])
    np.testing.assert_array_equal(loaded["params"]["text"]["blocks_1"]["attn"]["qkv"]["kernel"],
                                  sd["transformer.resblocks.1.attn.in_proj_weight"].T)
    bad = dict(sd, **{"visual.class_embedding": np.zeros((1, 1, 64), np.float32)})
    with pytest.raises(ValueError, match=r"visual.class_embedding has shape \(1, 1, 64\), "
                                         r"expected \(64,\)"):
        clip_convert.convert_state_dict(bad, model, source="x.safetensors")
    del bad["ln_final.bias"]
    with pytest.raises(ValueError, match=r"\(y.npz\): first missing name 'ln_final.bias'"):
        clip_convert.convert_state_dict(bad, model, source="y.npz")


# ----------------------------------------------------------------------------------------------
# Preprocessing: torch bicubic (A = -0.75, align_corners=False), then OpenAI mean/std.

def test_bicubic_matrix_equals_torch():
    """Weights of torch F.interpolate(bicubic, align_corners=False) on basis vectors (recorded
    from torch 2.x): 4 -> 3 and 3 -> 5 (taps beyond the edge clamp to the edge pixel)."""
    down = [[0.856482, 0.16088, -0.017361, 0], [-0.09375, 0.59375, 0.59375, -0.09375],
            [0, -0.017361, 0.160879, 0.856482]]
    up = [[1.096, -0.096, 0], [0.612, 0.46, -0.072], [0, 1, 0], [-0.072, 0.46, 0.612],
          [0, -0.096, 1.096]]
    np.testing.assert_allclose(clip.bicubic_matrix(4, 3), down, atol=2e-6)
    np.testing.assert_allclose(clip.bicubic_matrix(3, 5), up, atol=2e-6)
    np.testing.assert_array_equal(clip.bicubic_matrix(224, 224), np.eye(224))


def test_preprocess_images():
    x = jnp.full((2, 64, 48, 3), 0.25)
    y = clip.preprocess_images(x)
    assert y.shape == (2, 224, 224, 3)
    want = (0.25 - np.array(clip.OPENAI_MEAN)) / np.array(clip.OPENAI_STD)
    np.testing.assert_allclose(y, np.broadcast_to(want, y.shape), atol=1e-5)
    with pytest.raises(ValueError, match="NHWC"):
        clip.preprocess_images(jnp.zeros((1, 3, 8, 8)))


def test_config_defaults_and_unsupported_options():
    """open_clip ViT-B-32 given only its non-default sizes has OpenAI's 151,277,313 parameters
    (the count printed by the official CLIP notebook); options not ported are refused."""
    model = clip_convert.model_from_config({"embed_dim": 512, "vision_cfg": {"patch_size": 32},
                                            "text_cfg": {}})
    shapes = clip.init_shapes(model)
    assert sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes)) == 151_277_313
    with pytest.raises(ValueError, match="text_cfg.no_causal_mask=True is not supported"):
        clip_convert.model_from_config({"embed_dim": 8, "text_cfg": {"no_causal_mask": True}})
    with pytest.raises(ValueError, match=r"image_size=\[224, 256\] is not square"):
        clip_convert.model_from_config({"embed_dim": 8, "vision_cfg": {"image_size": [224, 256]}})
