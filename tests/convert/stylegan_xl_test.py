"""StyleGAN-XL official pickles (gan_zoo.convert.stylegan_xl via convert.official): pickles saved
by the official autonomousvision/stylegan_xl code at a tiny configuration, read without torch,
reproduce the official code's ws and images (tests/convert/stylegan_xl_official, written by
benchmarks/stylegan_xl_official_fixture.py: 16^2 stem Generator, 32^2 and 64^2
SuperresGenerators); the pretrained class table is read from the official embedding file.

Tolerance: 1e-5 absolute on ws and images (|img| <= 1.5; measured max difference 1.4e-6, the
official float32 CPU run against the jnp ops)."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo.convert import official, torch_pickle
from gan_zoo.convert import stylegan_xl as xlc

DATA = pathlib.Path(__file__).parent / "stylegan_xl_official"
ATOL = 1e-5
CASES = {"stem16": ((16,), (), ("1", "07")), "superres32": ((16, 32), (3,), ("1", "07")),
         "superres64": ((16, 32, 64), (3, 4), ("07",))}
PSI = {"1": 1.0, "07": 0.7}


@pytest.fixture(scope="module")
def ref():
    with np.load(DATA / "outputs.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def nets():
    return {name: official.load_official(DATA / f"{name}.pkl") for name in CASES}


@pytest.mark.parametrize("name", sorted(CASES))
def test_official_pickle_reproduces_official_outputs(name, nets, ref):
    n = nets[name]
    stages, heads, psis = CASES[name]
    assert n.family == "stylegan_xl" and n.D is None
    assert n.extra["stages"] == stages and n.extra["head_layers"] == heads
    assert n.G.img_resolution == stages[-1] and n.G.c_dim == 10
    z, c = jnp.asarray(ref["z"]), jnp.asarray(ref["c"])
    synthesize = jax.jit(lambda v, ws: n.G.apply(v, ws, method="synthesize")[0])
    for tag in psis:
        ws = n.G.apply(n.g_ema_variables, z, c, psi=PSI[tag], method="map")
        np.testing.assert_allclose(np.asarray(ws), ref[f"{name}/ws_psi{tag}"], rtol=0, atol=ATOL)
        img = np.asarray(synthesize(n.g_ema_variables, ws)).transpose(0, 3, 1, 2)  # -> NCHW
        np.testing.assert_allclose(img, ref[f"{name}/img_psi{tag}"], rtol=0, atol=ATOL)


def test_g_ema_is_loaded_not_g(nets, ref):
    """The pickle's G differs from G_ema: the ws of G must miss the official G_ema ws."""
    n = nets["superres32"]
    z, c = jnp.asarray(ref["z"]), jnp.asarray(ref["c"])
    ws = n.G.apply(n.g_variables, z, c, psi=0.7, method="map")
    assert np.abs(np.asarray(ws) - ref["superres32/ws_psi07"]).max() > 1e-2
    # The class table is the pickle's nn.Embedding weight, same layout.
    data = official.read_pickle(DATA / "superres32.pkl")
    want = data["G_ema"].state_dict["mapping.embed.weight"]
    np.testing.assert_array_equal(n.g_ema_variables["params"]["mapping"]["embed"]["embedding"],
                                  want)


def test_layer_names_that_fit_no_table_are_refused():
    rec = official.read_pickle(DATA / "superres64.pkl")["G_ema"]
    names = rec.modules["synthesis"].attrs["layer_names"]
    rec.modules["synthesis"].attrs["layer_names"] = names[:4] + names[5:]  # one head layer less
    with pytest.raises(ValueError, match="layer_names"):
        xlc.generator_from_record(rec, "bad.pkl")
    rec.class_name = "FastganGenerator"
    with pytest.raises(ValueError, match="bad.pkl: generator record is 'FastganGenerator'"):
        xlc.generator_from_record(rec, "bad.pkl")


def test_projected_d_is_skipped_with_a_warning(monkeypatch):
    """A real SG-XL pickle holds the Projected D (not ported as an official network)."""
    data = official.read_pickle(DATA / "stem16.pkl")
    data["D"] = torch_pickle.PersistentObject("ProjectedDiscriminator", (), {}, {}, {}, {}, "", 6)
    monkeypatch.setattr(official, "read_pickle", lambda path: data)
    with pytest.warns(UserWarning, match="ProjectedDiscriminator.*loading G only"):
        n = official.load_official(DATA / "stem16.pkl")
    assert n.D is None and "ProjectedDiscriminator" in n.extra["D_skipped"]
    assert n.g_ema_variables is not None


def test_class_embedding_file(tmp_path, ref):
    """config.model.embed_weights: the official file format (written by torch, read without it)
    and an .npz give G's table; a wrong shape names the field."""
    from gan_zoo.recipes import stylegan_xl_nets as nets_lib

    table = ref["embed_table"]  # the weight torch pickled into embed_10x12.pkl
    pkl, npz = DATA / "embed_10x12.pkl", tmp_path / "embed.npz"
    np.savez(npz, embed=table)
    params = {"mapping": {"embed": {"embedding": jnp.zeros((10, 12))}, "fc0": {"b": 1}}}
    for path in (pkl, npz):
        out = nets_lib.with_class_embedding(params, str(path))
        np.testing.assert_array_equal(out["mapping"]["embed"]["embedding"], table)
        assert out["mapping"]["fc0"] == {"b": 1}
    small = {"mapping": {"embed": {"embedding": jnp.zeros((10, 8))}}}
    with pytest.raises(ValueError, match=r"config.model.embed_weights=.*\[10, 12\].*\[10, 8\]"):
        nets_lib.with_class_embedding(small, str(npz))


def test_recipe_init_g_takes_the_class_table_from_the_file():
    """recipes.stylegan_xl.init_g (config.model.embed_weights) on a stand-in G (a real tiny G's
    init costs ~40 s eagerly on the loaded box; with_class_embedding is tested above)."""
    from gan_zoo.recipes import stylegan_xl as recipe

    class FakeG:
        z_dim = 8

        def init(self, rngs, z, c):
            assert z.shape == (2, 8) and c.shape == (2, 10)
            return {"params": {"mapping": {"embed": {"embedding": jnp.zeros((10, 12))}}},
                    "ema_stats": {"w_avg": jnp.ones(3)}}

    with np.load(DATA / "outputs.npz") as f:
        table = f["embed_table"]
    g_vars = recipe.init_g(FakeG(), jax.random.PRNGKey(0), 10, str(DATA / "embed_10x12.pkl"))
    np.testing.assert_array_equal(g_vars["params"]["mapping"]["embed"]["embedding"], table)
    assert g_vars["ema_stats"]["w_avg"].shape == (3,)
    fresh = recipe.init_g(FakeG(), jax.random.PRNGKey(0), 10)  # no file: G's own init
    assert not np.any(fresh["params"]["mapping"]["embed"]["embedding"])


def test_snapshot_with_the_projected_d_is_refused_with_a_hint(tmp_path):
    """The official snapshot's D is a plain pg_modules/timm module: refused (nothing runs), and
    the message says how to save G_ema alone."""
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(b"\x80\x02}q\x00X\x01\x00\x00\x00Dq\x01cpg_modules.discriminator\n"
                     b"ProjectedDiscriminator\nq\x02)\x81q\x03s.")
    with pytest.raises(official.UnsafePickleError,
                       match="pg_modules.discriminator.ProjectedDiscriminator.*G_ema"):
        official.load_official(path)
