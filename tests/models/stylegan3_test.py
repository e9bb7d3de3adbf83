"""StyleGAN3: public golden, filter schedule vs the official geometry and the spec table,
parameter count, config R, conditional shapes, translation equivariance."""

import io
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo.convert import stylegan2 as sg2_convert
from gan_zoo.convert import stylegan3 as convert
from gan_zoo.models import stylegan3
from gan_zoo.tools import golden as harness

CASE = "net_stylegan3_T_G_res32_uncond"


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def _shapes(G, n=2, c_dim=0):
    z = jnp.zeros([n, G.z_dim])
    c = jnp.zeros([n, c_dim]) if c_dim else None
    return jax.eval_shape(lambda: G.init(jax.random.PRNGKey(0), z, c))


@pytest.fixture(scope="module")
def meta(golden):
    return json.loads((golden / f"{CASE}.json").read_text())


def test_public_golden_passes(golden):
    out = io.StringIO()
    passed, failed = harness.run([golden / CASE], impl="xla", out=out)
    assert (passed, failed) == (1, 0), out.getvalue()


def test_layer_geometry_matches_official(meta):
    G = convert.generator_from_kwargs(meta["constructor_kwargs"])
    got = convert.layers_geometry(G)
    assert list(got) == meta["layer_names"]
    for name, want in meta["layers"].items():
        for key, value in want.items():
            assert got[name][key] == pytest.approx(value, rel=1e-12), (name, key)
    inp, _ = stylegan3.layer_specs(32, 3, 1024, 32)
    assert (inp.channels, inp.size, inp.sampling_rate, inp.bandwidth) == (
        meta["input_layer"]["channels"], meta["input_layer"]["size"][0],
        meta["input_layer"]["sampling_rate"], meta["input_layer"]["bandwidth"])


def test_schedule_at_1024_matches_spec_table():
    # Spec §1.1 sanity table: SG3-T at 1024, channel_base 32768, channel_max 512.
    inp, layers = stylegan3.layer_specs(1024)
    assert inp.bandwidth == 2 and inp.sampling_rate == 16 and inp.size == 36
    np.testing.assert_allclose(
        [s.out_cutoff for s in layers],
        [2, 3.17, 5.04, 8, 12.7, 20.2, 32, 50.8, 80.6, 128, 203, 323, 512, 512, 512], rtol=6e-3)
    rates = [s.out_sampling_rate for s in layers]
    assert rates == [16, 16, 32, 32, 64, 128, 128, 256, 256, 512] + [1024] * 5
    channels = [s.out_channels for s in layers]
    assert channels == [512] * 7 + [323, 203, 128, 81, 51, 32, 32, 3]
    assert [s.is_critically_sampled for s in layers] == [False] * 12 + [True] * 3
    assert [s.out_size for s in layers][-3:] == [1024 + 20, 1024, 1024]


def test_param_count_matches_official(meta):
    G = convert.generator_from_kwargs(meta["constructor_kwargs"])
    assert _count(_shapes(G)["params"]) == meta["num_params"]


def test_config_r_geometry_and_shapes():
    G = stylegan3.generator("config-r_test", c_dim=4)
    _, layers = stylegan3.layer_specs(32, 3, G.channel_base, G.channel_max, conv_kernel=1,
                                      use_radial_filters=True)
    assert all(s.conv_kernel == 1 for s in layers)
    assert [s.down_radial for s in layers] == [True] * 12 + [False] * 3
    fd = stylegan3.layer_filters(layers[0])[1]
    assert fd.ndim == 2 and fd.shape[0] == fd.shape[1]  # radial jinc: 2-D
    variables = _shapes(G, n=3, c_dim=4)
    z, c = jnp.zeros([3, G.z_dim]), jnp.zeros([3, 4])
    img, aux = jax.eval_shape(lambda v: G.apply(v, z, c), variables)
    assert img.shape == (3, 32, 32, 3) and aux["ws"].shape == (3, G.num_ws, G.w_dim)
    assert set(variables["ema_stats"]["synthesis"]) == {s.name for s in layers}


def test_translation_equivariance(golden):
    """Config T: translating the input (user transform) by k output pixels translates the image."""
    case = harness.load_case(golden / CASE)
    G = convert.generator_from_kwargs(case.meta["constructor_kwargs"], impl="xla")
    variables = convert.convert_state_dict(sg2_convert.split_golden_state(case), G)
    ws = jnp.asarray(case.arrays["output/ws_psi1"])
    synth = jax.jit(lambda v: G.apply(v, ws, method=G.synthesize)[0])

    def image(dx, dy):
        t = np.eye(3, dtype=np.float32)
        t[0, 2], t[1, 2] = dx, dy
        buffers = {"synthesis": {"input": {**variables["buffers"]["synthesis"]["input"],
                                           "transform": jnp.asarray(t)}}}
        return np.asarray(synth({**variables, "buffers": buffers}))

    k, r = 4, G.img_resolution
    base = image(0.0, 0.0)
    rel = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(b)
    x_shift, y_shift = image(k / r, 0.0), image(0.0, k / r)
    # transform is the inverse transform: +dx moves the content left by k pixels.
    err_x = rel(x_shift[:, :, :-k], base[:, :, k:])
    wrong_x = rel(x_shift[:, :, k:], base[:, :, :-k])
    err_y = rel(y_shift[:, :-k], base[:, k:])
    wrong_y = rel(y_shift[:, k:], base[:, :-k])
    assert err_x < 3e-3 and err_y < 3e-3, (err_x, err_y)
    assert wrong_x > 10 * err_x and wrong_y > 10 * err_y, (wrong_x, wrong_y)


def test_converter_rejects_wrong_geometry(golden):
    case = harness.load_case(golden / CASE)
    kwargs = dict(case.meta["constructor_kwargs"], num_layers=12)
    G = convert.generator_from_kwargs(kwargs)
    with pytest.raises(ValueError, match="geometry differs"):
        convert.convert_state_dict(sg2_convert.split_golden_state(case), G)
