"""Tools on the official files of ../shared/official (issue #13 items 3, 5): generate --network
reproduces the official images (NAME.expected.npz, made by the official code), tools.convert
writes a workdir whose --mode=sample images are the file's G_ema and from which
config.init_from starts training with the file's G, D and G_ema."""

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from gan_zoo.config_file import load_config_file
from gan_zoo.tools import convert, generate, generate_biggan, sampling

OFFICIAL = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "official")
REL_L2 = 1e-5  # ../shared/official/README.md: a correct float32 port agrees to ~1e-5 rel-L2


def path(name: str) -> str:
    p = os.path.join(OFFICIAL, name)
    if not os.path.exists(p):
        pytest.fail(f"official fixture {p} not found")
    return p


@functools.lru_cache(maxsize=None)
def expected(name: str) -> dict:
    with np.load(path(f"{name}.expected.npz")) as f:
        return {k: f[k] for k in f.files}


@functools.lru_cache(maxsize=None)
def official_nets(name: str):
    from gan_zoo.convert import official

    return official.load_official(path(name))


def nhwc(x):
    return np.asarray(x, np.float32).transpose(0, 2, 3, 1)


def assert_close(got, want, what: str):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    rel = np.linalg.norm(got - want) / np.linalg.norm(want)
    assert rel < REL_L2, f"{what}: rel-L2 {rel:.3g} >= {REL_L2}"


def assert_png(file, want_float, what: str):
    """A written PNG equals the official float image after uint8 rounding (+-1 level)."""
    got = np.asarray(Image.open(file)).astype(int)
    want = np.clip(np.rint((want_float + 1) * 127.5), 0, 255).astype(int)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert np.abs(got - want).max() <= 1, what


# ----------------------------------------------------------------------------------------------
# generate --network=FILE.

@pytest.mark.parametrize("name", ["sg2ada_cifar_cond32", "sg3t_uncond32"])
def test_generate_functions_reproduce_official_stylegan(name):
    """map_z + synthesize on the loaded G_ema = the official G(z, c, psi, cutoff): ws and images
    of ψ = 1, 0.7 and 0.7 up to num_ws // 2 (one synthesis batch: one compile)."""
    e, nets = expected(name), official_nets(f"{name}.pkl")
    G, v, c = nets.G, nets.g_ema_variables, (jnp.asarray(e["c"]) if e["c"].shape[1] else None)
    keys = ("psi1", "psi07", "psi07_cutoff")
    ws = [sampling.map_z(G, v, e["z"], c, psi, cutoff)
          for psi, cutoff in ((1.0, None), (0.7, None), (0.7, G.num_ws // 2))]
    for key, w in zip(keys, ws):
        assert_close(w, e[f"ws_{key}"], f"ws_{key}")
    images = sampling.synthesize(G, v, np.concatenate(ws), batch=len(keys) * len(e["z"]))
    for key, img in zip(keys, np.split(images, len(keys))):
        assert_close(img, nhwc(e[f"img_{key}"]), f"img_{key}")
    if "img_psi1_noise_none" in e:  # StyleGAN2: no noise inputs
        assert_close(sampling.synthesize(G, v, ws[0], "none"), nhwc(e["img_psi1_noise_none"]),
                     "noise_mode none")


def test_generate_cli_conditional_pickle(tmp_path):
    """The CLI on the .pkl with per-latent labels (c) and ψ = 0.7 up to num_ws // 2."""
    e = expected("sg2ada_cifar_cond32")
    np.savez(tmp_path / "z.npz", z=e["z"], c=e["c"])
    cutoff = e["ws_psi07_cutoff"].shape[1] // 2
    rc = generate.main([f"--network={path('sg2ada_cifar_cond32.pkl')}", "--trunc=0.7",
                        f"--trunc_cutoff={cutoff}", f"--latents={tmp_path / 'z.npz'}",
                        f"--outdir={tmp_path}"])
    assert rc == 0
    for i, img in enumerate(nhwc(e["img_psi07_cutoff"])):
        assert_png(tmp_path / f"latent{i:04d}.png", img, f"image {i}")


@pytest.mark.slow  # the same images as the function test above, through the CLI
def test_generate_cli_unconditional_stylegan3(tmp_path):
    e = expected("sg3t_uncond32")
    np.save(tmp_path / "z.npy", e["z"])
    rc = generate.main([f"--network={path('sg3t_uncond32.pkl')}", "--trunc=0.7",
                        f"--latents={tmp_path / 'z.npy'}", f"--outdir={tmp_path}"])
    assert rc == 0
    for i, img in enumerate(nhwc(e["img_psi07"])):
        assert_png(tmp_path / f"latent{i:04d}.png", img, f"image {i}")


@pytest.mark.parametrize("network,which,key", [
    ("biggan_32", "G_ema", "img"), ("biggan_32", "G", "G_img"),
    ("biggan_32/G_ema.legacy.pth", "G_ema", "img")])
def test_generate_cli_biggan(tmp_path, network, which, key):
    """The checkpoint folder (G_ema.pth / G.pth + state_dict.pth) and the pre-1.6 file."""
    e = expected("biggan_32")
    np.savez(tmp_path / "z.npz", z=e["z"], y=e["y"])
    rc = generate.main([f"--network={path(network)}", f"--which={which}",
                        f"--latents={tmp_path / 'z.npz'}", f"--outdir={tmp_path}"])
    assert rc == 0
    for i, img in enumerate(nhwc(e[key])):
        assert_png(tmp_path / f"latent{i:04d}.png", img, f"{key} {i}")


def test_biggan_render_and_truncation():
    e, nets = expected("biggan_32"), official_nets("biggan_32")
    img = generate_biggan.render(nets.G, nets.g_ema_variables, e["z"], e["y"].astype(np.int32))
    assert_close(img, nhwc(e["img"]), "BigGAN G_ema")
    z = generate_biggan.seed_z([0, 1, 2], 4096, threshold=0.5)
    assert np.abs(z).max() <= 0.5 and np.abs(z).max() > 0.49  # truncated, not clipped to 0
    assert np.array_equal(z, generate_biggan.seed_z([0, 1, 2], 4096, threshold=0.5))
    assert np.array_equal(generate_biggan.seed_z([3], 8), sampling.seed_z([3], 8))


def test_biggan_errors(tmp_path, capsys):
    base = [f"--network={path('biggan_32')}", f"--outdir={tmp_path}", "--seeds=0-1"]
    assert generate.main(base + ["--mode=mix", "--row_seeds=1", "--col_seeds=2"]) == 2
    assert "style mixing needs a StyleGAN W space" in capsys.readouterr().err
    assert generate.main(base) == 2  # no --class
    assert "--class: BigGAN is class-conditional" in capsys.readouterr().err
    assert generate.main(base + ["--class=1", "--trunc=0.5"]) == 2
    assert "--z_trunc" in capsys.readouterr().err
    assert generate.main(base + ["--class=1", "--mode=interp", "--frames=3"]) == 0
    assert len(list(tmp_path.glob("frame*.png"))) == 3


# ----------------------------------------------------------------------------------------------
# tools.convert.

@pytest.fixture(scope="module")
def sg3_workdir(tmp_path_factory):
    """sg3t_uncond32.pkl converted with the photos preset's training settings."""
    out = tmp_path_factory.mktemp("sg3_workdir")
    rc = convert.main([path("sg3t_uncond32.pkl"), f"--out={out}",
                       "--config=configs/stylegan3.py:photos"])
    assert rc == 0
    return out


@pytest.mark.slow
def test_convert_workdir_samples_are_the_file_g_ema(sg3_workdir):
    """--mode=sample's path (inference.sample with the written config.py) = the file's G_ema
    applied to the same z (the recipe's sample_fn draws them as below)."""
    from gan_zoo.train import inference

    config = load_config_file(str(sg3_workdir / "config.py"))
    assert config.networks == str(sg3_workdir / "networks.json")
    images, _ = inference.sample(config, str(sg3_workdir), num=4)
    nets = official_nets("sg3t_uncond32.pkl")
    batch = config.sample.standing_stats_batch_size
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed + 1), 1)
    z = jax.random.normal(key, (batch, nets.G.z_dim), jnp.float32)
    want, _ = nets.G.apply(nets.g_ema_variables, z, None, psi=1.0, noise_mode="const")
    want = np.clip(np.rint((np.asarray(want[:4]) + 1) * 127.5), 0, 255)
    assert np.abs(images.astype(int) - want.astype(int)).max() <= 1


@pytest.mark.slow
def test_init_from_starts_with_the_file_networks(sg3_workdir, tmp_path):
    """A new run with config.init_from: step 0, fresh Adam, G / D / G_ema = the file's; one
    training step then moves G."""
    from gan_zoo.train import checkpoint, loop, sharding

    config = load_config_file(str(sg3_workdir / "config.py"))
    config.init_from = str(sg3_workdir)
    config.train.update(num_steps=1)
    config.checkpoint.update(use_async=False)
    config.log.update(image_every_steps=0, every_steps=1)
    _, abstract, _, init = loop.build_state(config, sharding.make_mesh(config.mesh))
    fresh = init()
    state = loop.restore_or_init(checkpoint.Checkpointer(str(tmp_path / "a"), 1, False),
                                 abstract, init, config.init_from)
    nets = official_nets("sg3t_uncond32.pkl")
    same = lambda a, b: jax.tree.all(jax.tree.map(  # noqa: E731
        lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)), a, b))
    assert int(state.step) == 0
    assert same(state.params["g"], nets.g_variables["params"])
    assert same(state.ema_params, nets.g_ema_variables["params"])
    assert same(state.params["d"], nets.d_variables["params"])
    assert same(state.opt_state, fresh.opt_state)
    assert not same(nets.g_variables["params"], nets.g_ema_variables["params"])  # G != G_ema
    trained, history = loop.run(config, str(tmp_path / "b"))
    assert int(trained.step) == 1 and np.isfinite(history[-1][1]["g/loss"])
    assert not same(trained.params["g"], nets.g_variables["params"])


def test_convert_npz_round_trips_into_generate(tmp_path):
    rc = convert.main([path("sg3t_uncond32.pkl"), f"--out={tmp_path}", "--to=npz"])
    assert rc == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "D.json", "D.npz", "G.json", "G.npz", "G_ema.json", "G_ema.npz"]
    assert json.loads((tmp_path / "G_ema.json").read_text())["init_kwargs"]["z_dim"] == 64
    e = expected("sg3t_uncond32")
    G, v = generate.load_network(tmp_path / "G_ema.npz")
    assert_close(sampling.synthesize(G, v, sampling.map_z(G, v, e["z"], None)),
                 nhwc(e["img_psi1"]), "G_ema.npz")


def test_convert_errors(tmp_path, capsys):
    rc = convert.main([path("biggan_32"), f"--out={tmp_path}",
                       "--config=configs/stylegan2.py:photos"])
    assert rc == 2 and "does not train a biggan network" in capsys.readouterr().err
    assert convert.main([str(tmp_path / "nothing.pkl"), f"--out={tmp_path}"]) == 2
    assert "nothing.pkl" in capsys.readouterr().err
