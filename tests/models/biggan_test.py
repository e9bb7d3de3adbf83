"""BigGAN / BigGAN-deep networks: the public goldens, paper parameter counts (spec biggan.md §1.9),
output shapes at every resolution (all through jax.eval_shape, nothing allocated), the
train/eval state semantics and the config factories."""

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gan_zoo.convert.biggan  # noqa: F401  (registers convert.biggan)
from gan_zoo import convert
from gan_zoo.models import biggan, biggan_deep
from gan_zoo.tools import golden as golden_tool

KEY = jax.random.PRNGKey(0)
MUTABLE = ["batch_stats", "spectral_norm"]


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _abstract(model, batch: int = 2):
    """((output, aux), variables) of model.init_with_output as shapes only."""
    r = model.resolution
    y = jnp.zeros((batch,), jnp.int32)
    if isinstance(model, (biggan.Generator, biggan_deep.Generator)):
        slots, chunk = model.z_chunks()
        x = jnp.zeros((batch, slots * chunk))
    else:
        x = jnp.zeros((batch, r, r, 3))
    return jax.eval_shape(lambda: model.init_with_output(KEY, x, y, train=False))


# --- Goldens -------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["net_biggan_G_res32", "net_biggan_D_res32",
                                  "net_biggandeep_G_res32", "net_biggandeep_D_res32"])
def test_golden(golden, case):
    out = io.StringIO()
    passed, failed = golden_tool.run([golden / case], out=out)
    assert (passed, failed) == (1, 0), out.getvalue()


# --- Parameter counts (spec §1.9) ----------------------------------------------------------------

# (variant, overrides, G params, D params). Exact counts; the comments give the spec/paper figure.
# The spec's own counts leave out 1-D params it lists separately: +193 in BigGAN-128 G (final BN
# gain/bias, attention gamma) and +1 (attention gamma) in the Ds; R-cg's counts include them.
PARAM_COUNTS = [
    # G 70.4M (spec 70,433,795 + 193), D 88.0M (spec 87,982,369 + 1; R-cg 87,982,370).
    ("biggan-128", {}, 70_433_988, 87_982_370),
    ("biggan-256", {}, 82_097_604, 99_225_890),  # spec 82.10M / 99.23M
    ("biggan-512", {}, 82_468_068, 99_401_282),  # spec 82.47M / 99.40M (z = 160)
    # G 50.4M only with the released 128-channel RGB conv; D 34.6M (spec 34,590,209 + 1).
    ("biggan-deep-128", {"rgb_conv_channels": 128}, 50_388_609, 34_590_210),
    ("biggan-deep-128", {}, 50_244_484, None),  # spec 50.24M with a 3-channel RGB conv
    ("biggan-deep-256", {}, 55_736_708, 38_247_426),  # spec 55.74M / 38.25M
    ("biggan-deep-256", {"rgb_conv_channels": 128}, 55_880_833, None),  # spec +0.14M
    ("biggan-deep-512", {}, 56_019_780, 38_301_122),  # spec 56.02M / 38.30M
]


@pytest.mark.parametrize("variant,overrides,n_g,n_d", PARAM_COUNTS)
def test_paper_parameter_counts_and_shapes(variant, overrides, n_g, n_d):
    cfg = {**biggan.VARIANTS[variant], **overrides}
    r = cfg["resolution"]
    (img, aux), g_vars = _abstract(biggan.make_generator(cfg))
    assert _count(g_vars["params"]) == n_g
    assert img.shape == (2, r, r, 3)
    assert aux["y"].shape == (2, cfg["shared_dim"])
    if n_d is not None:
        (logits, d_aux), d_vars = _abstract(biggan.make_discriminator(cfg))
        assert _count(d_vars["params"]) == n_d
        assert logits.shape == (2,) and logits.dtype == jnp.float32
        assert d_aux["features"].shape == (2, 16 * cfg["D_ch"])


@pytest.mark.parametrize("name", ["biggan", "biggan_deep"])
@pytest.mark.parametrize("resolution", [32, 64, 128, 256, 512])
def test_shapes_at_every_resolution(name, resolution):
    z_chunks = len(biggan.G_ARCH[resolution][0]) + 1 if name == "biggan" else 1
    cfg = dict(name=name, resolution=resolution, n_classes=5, dim_z=4 * z_chunks, shared_dim=8,
               G_ch=8, D_ch=8, G_attn="32", D_attn="32")
    (img, aux), g_vars = _abstract(biggan.make_generator(cfg))
    (logits, _), d_vars = _abstract(biggan.make_discriminator(cfg))
    assert img.shape == (2, resolution, resolution, 3)
    assert logits.shape == (2,)
    # One non-local block per network, at 32x32 (the res-32 D labels every stage 16: none there).
    g_attn = [k for k in g_vars["params"] if "gamma" in g_vars["params"][k]]
    d_attn = [k for k in d_vars["params"] if "gamma" in d_vars["params"][k]]
    assert len(g_attn) == 1
    assert len(d_attn) == (0 if resolution == 32 else 1)
    assert set(aux["sv"]) >= {"linear", "output_layer_2"}


def _sn_nodes(tree):
    """The {u0, sv0} dicts of a spectral_norm collection."""
    if "u0" in tree:
        return [tree]
    return [n for v in tree.values() for n in _sn_nodes(v)]


# --- State semantics -----------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["biggan", "biggandeep"])
def tiny(request, golden):
    """(G, D, z, labels, x, G variables, D variables) of the res-32 golden networks (loaded, not
    initialised: eager init of every orthogonal matrix costs more CPU than loading)."""
    g_case = golden_tool.load_case(golden / f"net_{request.param}_G_res32")
    d_case = golden_tool.load_case(golden / f"net_{request.param}_D_res32")
    G, g_vars = convert.biggan._build(g_case)
    D, d_vars = convert.biggan._build(d_case)
    x = jnp.asarray(d_case.arrays["input/x"].transpose(0, 2, 3, 1))
    z, labels = (jnp.asarray(g_case.arrays[k]) for k in ("input/z", "input/y_class"))
    return G, D, z, labels, x, g_vars, d_vars


def test_generator_train_updates_state_eval_does_not(tiny):
    G, _, z, labels, _, g_vars, _ = tiny
    (img, aux), new = G.apply(g_vars, z, labels, train=True, mutable=MUTABLE)
    assert img.shape == (4, 32, 32, 3) and float(jnp.max(jnp.abs(img))) <= 1.0
    # Every BN statistic and SN vector moved (sv0 may stay 1: sigma of an orthogonal init is 1).
    moved = {c: jax.tree.map(lambda a, b: bool(jnp.any(a != b)), g_vars[c], new[c])
             for c in MUTABLE}
    assert all(jax.tree.leaves(moved["batch_stats"]))
    assert all(v["u0"] for v in _sn_nodes(moved["spectral_norm"]))
    (_, _), same = G.apply(g_vars, z, labels, train=False, mutable=MUTABLE)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), g_vars["batch_stats"],
                                     same["batch_stats"]))
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), g_vars["spectral_norm"],
                                     same["spectral_norm"]))
    assert set(aux["sv"]) >= {"linear", "output_layer_2"}
    with pytest.raises(ValueError, match="mutable"):
        G.apply(g_vars, z, labels, train=True)


def test_generator_y_entry_matches_labels(tiny):
    G, _, z, labels, _, g_vars, _ = tiny
    img, aux = G.apply(g_vars, z, labels, train=False)
    img_y, _ = G.apply(g_vars, z, y=aux["y"], train=False)
    np.testing.assert_array_equal(img, img_y)
    with pytest.raises(ValueError, match="exactly one"):
        G.apply(g_vars, z, labels, y=aux["y"], train=False)


def test_discriminator_train_eval_logits_equal_and_sn_updates(tiny):
    _, D, _, labels, x, _, d_vars = tiny
    logits, aux = D.apply(d_vars, x, labels, train=False)
    (logits_t, _), new = D.apply(d_vars, x, labels, train=True, mutable=["spectral_norm"])
    np.testing.assert_array_equal(logits, logits_t)  # reference semantics: same sigma
    (logits_2, _), _ = D.apply({**d_vars, **new}, x, labels, train=True, mutable=["spectral_norm"])
    assert not np.array_equal(logits, logits_2)
    assert "batch_stats" not in d_vars
    assert set(aux["sv"]) >= {"linear", "embed"}


@pytest.mark.parametrize("tiny", ["biggan"], indirect=True)  # one family is enough here
def test_bfloat16_compute(tiny):
    G32, _, z, labels, _, g_vars, _ = tiny
    G = G32.clone(dtype=jnp.bfloat16)
    img, _ = G.apply(g_vars, z, labels, train=False)
    img32, _ = G32.apply(g_vars, z, labels, train=False)
    assert img.dtype == jnp.bfloat16
    assert float(jnp.max(jnp.abs(img.astype(jnp.float32) - img32))) < 0.1


# --- Config errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides,match", [
    ({"name": "biggan_x"}, "model.name"),
    ({"resolution": 48}, "resolution"),
    ({"dim_z": 121}, "dim_z"),
    ({"G_attn": "sixty"}, "G_attn"),
])
def test_bad_generator_configs(overrides, match):
    with pytest.raises(ValueError, match=match):
        G = biggan.make_generator({**biggan.VARIANTS["biggan-128"], **overrides})
        _abstract(G)


def test_wrong_input_shapes(tiny):
    G, D, z, labels, x, g_vars, d_vars = tiny
    with pytest.raises(ValueError, match="z"):
        G.apply(g_vars, z[:, :-1], labels, train=False)
    with pytest.raises(ValueError, match="x"):
        D.apply(d_vars, x[:, :16], labels, train=False)
    with pytest.raises(ValueError, match="labels"):
        D.apply(d_vars, x, labels.astype(jnp.float32), train=False)


def test_deep_factory_reads_neither_hier_nor_g_shared():
    cfg = {**biggan.VARIANTS["biggan-deep_test"], "hier": False, "G_shared": False}
    G = biggan.make_generator(cfg)
    assert isinstance(G, biggan_deep.Generator) and G.hier
