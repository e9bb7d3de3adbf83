"""StyleGAN-XL generator: the grown layer table against the spec's numbers, parameter counts of the
paper-scale presets (eval_shape), shapes per stage, per-class w_avg and class-conditional
truncation, the magnitude EMA left off, and the stem kept bit-identical across growing.
There are no StyleGAN-XL goldens: every check here is an invariant or a number from the spec."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from gan_zoo.models import stylegan_xl as xl

KEY = jax.random.PRNGKey(0)


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def _inputs(G, labels=(1, 3)):
    n = len(labels)
    z = jax.random.normal(jax.random.PRNGKey(7), (n, G.z_dim))
    c = jax.nn.one_hot(jnp.array(labels), G.c_dim) if G.c_dim else None
    return z, c


def _init(G, z, c, key=KEY):
    """Jitted init: one compile instead of hundreds of op-by-op ones (busy 2-core CPU)."""
    return jax.jit(lambda k, z, c: G.init(k, z, c))(key, z, c)


def _apply(G, v, z, c, **kw):
    """Jitted apply; array-valued keywords are closed over as constants."""
    return jax.jit(lambda v, z, c: G.apply(v, z, c, **kw))(v, z, c)


# ----- Layer table (design time, NumPy) -----

def test_stem_schedule_matches_spec():
    """Spec §1.3: 16^2 stem of 11 layers, f_c 2 -> 8 over 9 steps then 8, 8 (and ToRGB), all
    s = 16, all ch = 1024; only the last two layers and ToRGB are critically sampled."""
    t = xl.layer_table((16,))
    assert t.num_layers == 11 and t.num_ws == 13
    expected = [2 * 4 ** (i / 9) for i in range(9)] + [8, 8, 8]
    np.testing.assert_allclose([s.out_cutoff for s in t.layers], expected, rtol=1e-12)
    assert {s.out_sampling_rate for s in t.layers} == {16}
    assert [s.out_channels for s in t.layers] == [1024] * 11 + [3]
    assert [s.is_critically_sampled for s in t.layers] == [False] * 9 + [True] * 3
    assert (t.input.channels, t.input.size, t.input.bandwidth) == (1024, 36, 2)


def test_head_32_matches_spec():
    """Spec §1.3 example 16^2 -> 32^2: the head's cutoffs 6.86, 8.12, 9.62, 11.4, 13.5, 16, 16,
    16 (ToRGB last), rates 16 then 32; head layer 0 maps the last kept stem spec to itself."""
    t = xl.layer_table((16, 32))
    head = [s for s, r in zip(t.layers, t.stage) if r == 32]
    np.testing.assert_allclose([s.out_cutoff for s in head],
                               [6.86, 8.12, 9.62, 11.4, 13.5, 16, 16, 16], atol=0.01)
    assert [s.out_sampling_rate for s in head] == [16] + [32] * 7
    last_stem = t.layers[len(t.layers) - len(head) - 1]
    h0 = head[0]
    assert (h0.in_cutoff, h0.in_sampling_rate, h0.in_size, h0.in_channels) == (
        last_stem.out_cutoff, last_stem.out_sampling_rate, last_stem.out_size,
        last_stem.out_channels)
    assert (h0.out_cutoff, h0.out_half_width) == (h0.in_cutoff, h0.in_half_width)
    assert (head[-1].is_torgb, head[-1].out_size, head[-1].out_channels) == (True, 32, 3)
    # Official names: the head continues at L<kept + 1> (L9 is skipped).
    assert [s.name for s in t.layers[8:10]] == ["L8_36_1024", "L10_36_1024"]


def test_layer_counts_per_stage():
    """Spec §1.3: 11, 16, 21, 26, 31, 36, 39 conv layers (5-layer head at 1024^2)."""
    stages = xl.stage_resolutions(1024)
    counts = [xl.layer_table(stages[:k + 1]).num_layers for k in range(len(stages))]
    assert counts == [11, 16, 21, 26, 31, 36, 39]


def test_growing_keeps_the_previous_layers():
    """Each stage = the previous stage minus its critically sampled layers + a new head."""
    stages = xl.stage_resolutions(256)
    for k in range(1, len(stages)):
        prev, cur = xl.layer_table(stages[:k]), xl.layer_table(stages[:k + 1])
        kept = tuple(s for s in prev.layers if not s.is_critically_sampled)
        assert cur.layers[:len(kept)] == kept
        assert cur.input == prev.input
        assert len(cur.layers) - len(kept) == 8  # 7 layers + ToRGB
        names = [s.name for s in cur.layers]
        assert len(set(names)) == len(names)


def test_bad_stage_settings_raise():
    with pytest.raises(ValueError, match="img_resolution=48"):
        xl.stage_resolutions(48)
    with pytest.raises(ValueError, match="head_layers"):
        xl.layer_table((16, 32), head_layers=(7, 7))
    with pytest.raises(ValueError, match="num_critical"):
        xl.layer_table((16, 32), head_layers=(2,))


# ----- Parameter counts (paper scale, nothing allocated) -----

# Exact figures of this code; spec §1.2 estimates about 112M, 212M, 245M from the official
# defaults. Every parameter tensor matches an official one (mapping 669,248 = embed 1000x320 +
# embed_proj 320x64+64 + fc0 128x512+512 + fc1 512x512+512; per layer affine, weight, bias; the
# input's affine and C x C weight), so the official modules count the same. Note the paper's
# "3x larger than StyleGAN3" (SG3-T is about 22M) does not match (spec §6 item 6).
def _official_count(t, w_dim=512, z_dim=64, embed=(1000, 320)) -> int:
    """Parameters of the official modules for a layer table: SynthesisInput (weight C x C, affine
    w_dim -> 4), per SynthesisLayer affine w_dim -> I, weight O x I x k x k, bias O; mapping."""
    c0 = t.input.channels
    n = c0 * c0 + 4 * w_dim + 4
    for s in t.layers:
        n += (w_dim + 1) * s.in_channels + s.out_channels * s.in_channels * s.conv_kernel**2
        n += s.out_channels
    mapping = embed[0] * embed[1] + (embed[1] + 1) * z_dim + (2 * z_dim + 1) * w_dim
    return n + mapping + (w_dim + 1) * w_dim


@pytest.mark.parametrize("res, expected", [(16, 111_846_983), (64, 211_482_183),
                                           (1024, 245_737_590)])
def test_imagenet_param_counts(res, expected):
    G = xl.generator("imagenet", res)
    z, c = jnp.zeros([1, G.z_dim]), jnp.zeros([1, G.c_dim])
    params = jax.eval_shape(lambda: G.init(KEY, z, c))["params"]
    assert _count(params) == expected
    assert _count(params["mapping"]) == 669_248
    assert _official_count(G.table()) == expected


# ----- Tiny generators: shapes, truncation, EMAs -----

@pytest.mark.parametrize("res", [16, 32, 64])
def test_shapes_per_stage(res):
    G = xl.generator("imagenet_test", res)
    z, c = _inputs(G)
    (img, aux), v = jax.eval_shape(lambda: G.init_with_output(KEY, z, c))
    assert img.shape == (2, res, res, 3)
    assert aux["ws"].shape == (2, G.table().num_ws, G.w_dim)
    assert v["ema_stats"]["mapping"]["w_avg"].shape == (G.c_dim, G.w_dim)


@pytest.fixture(scope="module")
def tiny16():
    G = xl.generator("imagenet_test", 16)
    z, c = _inputs(G)
    return G, _init(G, z, c)


def test_class_conditional_truncation(tiny16):
    """psi = 0 gives each sample its class's w_avg (SG-XL §4.1); a cutoff keeps later ws."""
    G, v = tiny16
    w_avg = jax.random.normal(jax.random.PRNGKey(3), (G.c_dim, G.w_dim))
    v = {**v, "ema_stats": {**v["ema_stats"], "mapping": {"w_avg": w_avg}}}
    labels = (4, 1, 4)
    z, c = _inputs(G, labels)
    ws = _apply(G, v, z, c, psi=0.0, method=G.map)
    np.testing.assert_array_equal(ws, np.broadcast_to(w_avg[np.array(labels), None], ws.shape))
    ws1 = _apply(G, v, z, c, method=G.map)
    ws_cut = _apply(G, v, z, c, psi=0.0, cutoff=2, method=G.map)
    np.testing.assert_array_equal(ws_cut[:, 2:], ws1[:, 2:])
    np.testing.assert_array_equal(ws_cut[:, :2], ws[:, :2])


def test_class_w_avg_update_and_magnitude_ema_off(tiny16):
    """update_emas: w_avg[l] <- w_i + 0.998 (w_avg[l] - w_i) sample by sample in batch order
    (torch.lerp as the official loop); other classes unchanged; magnitude EMAs stay 1."""
    G, v = tiny16
    w_avg0 = np.asarray(jax.random.normal(jax.random.PRNGKey(4), (G.c_dim, G.w_dim)))
    v = {**v, "ema_stats": {**v["ema_stats"], "mapping": {"w_avg": jnp.asarray(w_avg0)}}}
    labels = (2, 5, 2)
    z, c = _inputs(G, labels)
    w = np.asarray(_apply(G, v, z, c, method=G.map)[:, 0])
    _, new = _apply(G, v, z, c, update_emas=True, mutable=["ema_stats"])
    expected = w_avg0.copy()
    for wi, label in zip(w, labels):
        expected[label] = wi + 0.998 * (expected[label] - wi)
    np.testing.assert_allclose(new["ema_stats"]["mapping"]["w_avg"], expected, rtol=1e-6,
                               atol=1e-6)
    mags = [x["magnitude_ema"] for x in new["ema_stats"]["synthesis"].values()]
    assert len(mags) == G.table().num_layers + 1 and all(float(m) == 1.0 for m in mags)


def test_embed_table_rows_checked():
    G = xl.generator("imagenet_test", 16, c_dim=11)  # the table has 10 rows
    z, c = _inputs(G, (0,))
    with pytest.raises(ValueError, match="c_dim=11 exceeds embed_table rows 10"):
        jax.eval_shape(lambda: G.init(KEY, z, c))


def test_unconditional_small_variant():
    G = xl.generator("small_test", 32)
    z, _ = _inputs(G)
    (img, _), v = jax.eval_shape(lambda: G.init_with_output(KEY, z, None))
    assert img.shape == (2, 32, 32, 3)
    assert v["ema_stats"]["mapping"]["w_avg"].shape == (G.w_dim,)
    assert "embed" not in v["params"]["mapping"]


# ----- Growing: frozen stem -----

def _stem_activations(G, v, z, c, names):
    _, state = _apply(G, v, z, c, capture_intermediates=True, mutable=["intermediates"])
    inter = state["intermediates"]["synthesis"]
    return {n: inter[n]["__call__"][0] for n in names} | {"input": inter["input"]["__call__"][0]}


@pytest.mark.slow  # ~25 s CPU: compiles a 16^2 and a 32^2 G
def test_stem_bit_identical_after_growing(tiny16):
    """A 32^2 G whose stem is copied from a 16^2 G computes the same stem activations, bit for
    bit, each G under its own jit (as in training); the head is the 32^2 G's own init;
    stem_mask marks mapping, input and stem layers."""
    G16, v16 = tiny16
    G32 = xl.generator("imagenet_test", 32)
    z, c = _inputs(G32)
    v32 = xl.grow_variables(v16, _init(G32, z, c, jax.random.PRNGKey(5)), G32)
    stem = xl.stem_layer_names(G32)
    assert stem == ("L0_36_16", "L1_36_16", "L2_36_16")
    a16 = _stem_activations(G16, v16, z, c, stem)
    a32 = _stem_activations(G32, v32, z, c, stem)
    for name in a16:
        np.testing.assert_array_equal(a32[name], a16[name], err_msg=name)
    mask = traverse_util.flatten_dict(xl.stem_mask(G32, v32["params"]))
    frozen = {k[:2] for k, m in mask.items() if m}
    assert frozen == ({("mapping", n) for n in ("embed", "embed_proj", "fc0", "fc1")}
                      | {("synthesis", n) for n in ("input",) + stem})
    assert not any(traverse_util.flatten_dict(xl.stem_mask(G16, v16["params"])).values())
    np.testing.assert_array_equal(v32["ema_stats"]["mapping"]["w_avg"],
                                  v16["ema_stats"]["mapping"]["w_avg"])
    np.testing.assert_array_equal(v32["buffers"]["synthesis"]["input"]["freqs"],
                                  v16["buffers"]["synthesis"]["input"]["freqs"])


def test_grow_from_mismatched_source_raises(tiny16):
    _, v16 = tiny16
    G32 = xl.generator("imagenet_test", 32, channel_max=8)
    z, c = _inputs(G32)
    v32 = jax.eval_shape(lambda: G32.init(KEY, z, c))
    msg = r"grow_variables: .*freqs has shape \(16, 2\) in the source G, \(8, 2\)"
    with pytest.raises(ValueError, match=msg):
        xl.grow_variables(v16, v32, G32)
