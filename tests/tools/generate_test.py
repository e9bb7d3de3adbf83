"""gan_zoo.tools.generate on a tiny random StyleGAN2 exported to torch names (official .npz)."""

import functools
import json
import re

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from gan_zoo.convert import stylegan2 as sg2_convert
from gan_zoo.tools import generate, sampling
from gan_zoo.train import writers

KWARGS = dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, channel_base=256,
              channel_max=32, mapping_kwargs=dict(num_layers=2))


def _perturb(variables, key):
    """Non-zero noise strengths and w_avg, so const noise and truncation are exercised."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables))
    for i, path in enumerate(sorted(flat)):
        if path[-1] in ("noise_strength", "w_avg"):
            flat[path] = 0.5 * jax.random.normal(jax.random.fold_in(key, i), flat[path].shape)
    return flax.traverse_util.unflatten_dict(flat)


@functools.lru_cache(maxsize=1)
def tiny_generator():
    """(G, variables) of KWARGS with non-zero noise strengths and w_avg; built once per session."""
    G = sg2_convert.generator_from_kwargs(KWARGS)
    variables = jax.jit(G.init)({"params": jax.random.PRNGKey(0)}, jnp.zeros([1, G.z_dim]), None)
    return G, _perturb(variables, jax.random.PRNGKey(1))


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """(G, variables, path of the exported .npz with its .json beside it)."""
    G, variables = tiny_generator()
    d = tmp_path_factory.mktemp("net")
    np.savez(d / "G.npz", **sg2_convert.export_state_dict(variables))
    (d / "G.json").write_text(json.dumps({"class_name": "training.networks_stylegan2.Generator",
                                          "init_kwargs": KWARGS}))
    return G, variables, str(d / "G.npz")


def _direct(G, variables, seed, psi=1.0):
    """The official recipe: z = RandomState(seed).randn(1, z_dim), G(z, psi, noise 'const')."""
    z = np.random.RandomState(seed).randn(1, G.z_dim)
    img, _ = G.apply(variables, jnp.asarray(z, jnp.float32), None, psi=psi, noise_mode="const")
    return writers.to_uint8(img)[0]


def _png(path):
    return np.asarray(Image.open(path))


def _run(*argv):
    assert generate.main(list(argv)) == 0


def _close(a, b):
    """uint8 images equal up to one rounding step (batched vs single-sample float noise)."""
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_seed_matches_direct_call(net, tmp_path):
    G, variables, npz = net
    _run(f"--network={npz}", "--seeds=3,5-6", f"--outdir={tmp_path}", "--grid")
    for s in (3, 5, 6):
        _close(_png(tmp_path / f"seed{s:04d}.png"), _direct(G, variables, s))
    assert _png(tmp_path / "grid.png").shape == (32, 32, 3)  # 3 images in a 2x2 grid
    assert not np.array_equal(_png(tmp_path / "seed0003.png"), _png(tmp_path / "seed0005.png"))


def test_truncation_psi0_gives_w_avg_image(net, tmp_path):
    G, variables, npz = net
    _run(f"--network={npz}", "--seeds=1-2", "--trunc=0", f"--outdir={tmp_path}")
    w_avg = variables["ema_stats"]["mapping"]["w_avg"]
    ws = jnp.broadcast_to(w_avg, (1, G.num_ws, G.w_dim))
    ref = writers.to_uint8(G.apply(variables, ws, noise_mode="const", method="synthesize")[0])[0]
    _close(_png(tmp_path / "seed0001.png"), ref)
    _close(_png(tmp_path / "seed0002.png"), ref)
    _close(_png(tmp_path / "seed0001.png"), _direct(G, variables, 1, psi=0.0))


def test_latents_w_file_round_trip(net, tmp_path):
    G, variables, npz = net
    z = np.random.RandomState(7).randn(1, G.z_dim).astype(np.float32)
    ws = np.asarray(G.apply(variables, jnp.asarray(z), None, method="map"))
    np.savez(tmp_path / "projected_w.npz", w=ws)
    _run(f"--network={npz}", f"--latents={tmp_path / 'projected_w.npz'}", f"--outdir={tmp_path}")
    _close(_png(tmp_path / "latent0000.png"), _direct(G, variables, 7))


def test_mix_grid_rows_and_cols(net, tmp_path):
    G, variables, npz = net
    rows, cols = [1, 2], [3, 4, 5]
    _run(f"--network={npz}", "--mode=mix", "--row_seeds=1-2", "--col_seeds=3-5", "--styles=0-1",
         f"--outdir={tmp_path}")
    grid = _png(tmp_path / "grid.png")
    assert grid.shape == (3 * 16, 4 * 16, 3)
    cell = lambda i, j: grid[i * 16:(i + 1) * 16, j * 16:(j + 1) * 16]
    assert not cell(0, 0).any()  # blank corner
    for j, s in enumerate(cols):
        _close(cell(0, j + 1), _direct(G, variables, s))  # top row: column seeds
    for i, s in enumerate(rows):
        _close(cell(i + 1, 0), _direct(G, variables, s))  # left column: row seeds
        for j, c in enumerate(cols):
            mixed = cell(i + 1, j + 1)
            np.testing.assert_array_equal(mixed, _png(tmp_path / f"{s}-{c}.png"))
            assert not np.array_equal(mixed, cell(i + 1, 0))
            assert not np.array_equal(mixed, cell(0, j + 1))


def test_mix_all_styles_is_the_column_image(net, tmp_path):
    G, variables, npz = net
    _run(f"--network={npz}", "--mode=mix", "--row_seeds=1", "--col_seeds=3",
         f"--styles=0-{G.num_ws - 1}", f"--outdir={tmp_path}")
    _close(_png(tmp_path / "1-3.png"), _direct(G, variables, 3))


def test_mix_ws_copies_only_the_styles():
    rows, cols = np.zeros([2, 6, 4]), np.ones([3, 6, 4])
    out = sampling.mix_ws(rows, cols, [1, 4])
    assert out.shape == (2, 3, 6, 4)
    assert (out[:, :, [1, 4]] == 1).all() and (out[:, :, [0, 2, 3, 5]] == 0).all()


def test_interp_endpoints_are_the_seed_images(net, tmp_path):
    G, variables, npz = net
    _run(f"--network={npz}", "--mode=interp", "--seeds=1,2,3", "--frames=4",
         f"--outdir={tmp_path}")
    frames = sorted(tmp_path.glob("frame*.png"))
    assert len(frames) == 7  # (3 - 1) * (4 - 1) + 1
    for k, s in ((0, 1), (3, 2), (6, 3)):
        _close(_png(frames[k]), _direct(G, variables, s))
    assert _png(tmp_path / "strip.png").shape == (16, 7 * 16, 3)
    assert not np.array_equal(_png(frames[1]), _png(frames[0]))


def test_interp_ws_is_linear_with_exact_endpoints():
    ws = np.random.RandomState(0).randn(3, 2, 5).astype(np.float32)
    out = sampling.interp_ws(ws, 5)
    assert out.shape == (9, 2, 5)
    np.testing.assert_array_equal(out[[0, 4, 8]], ws)
    np.testing.assert_allclose(out[2], 0.5 * (ws[0] + ws[1]), rtol=1e-6)


@pytest.mark.parametrize("text,match", [("7-3", "empty range"), ("a", "integers"),
                                        ("1,,2", "integers"), ("-1", "integers"),
                                        ("4294967296", "outside")])
def test_parse_range_errors_name_the_flag(text, match):
    with pytest.raises(ValueError, match=f"--seeds: .*{match}"):
        sampling.parse_range("--seeds", text)


def test_parse_range():
    assert sampling.parse_range("--seeds", "0-3,12, 7") == [0, 1, 2, 3, 12, 7]


@pytest.mark.parametrize("extra,flag", [
    (["--seeds=5-1"], "--seeds"),
    (["--seeds=1", "--trunc_cutoff=99"], "--trunc_cutoff"),
    (["--mode=mix", "--row_seeds=1", "--col_seeds=2", "--styles=0-40"], "--styles"),
    (["--mode=interp", "--seeds=1"], "--seeds"),
    (["--latents=/nonexistent.npy"], "--latents"),
    (["--seeds=1", "--latents=x.npy"], "--seeds / --latents"),
])
def test_cli_errors_name_the_flag(net, tmp_path, capsys, extra, flag):
    _, _, npz = net
    assert generate.main([f"--network={npz}", f"--outdir={tmp_path}"] + extra) == 2
    assert f"error: {flag}" in capsys.readouterr().err


def test_missing_network_and_kwargs(net, tmp_path, capsys):
    _, _, npz = net
    assert generate.main([f"--network={tmp_path / 'nope.npz'}", "--seeds=1",
                          f"--outdir={tmp_path}"]) == 2
    assert "--network" in capsys.readouterr().err
    lone = tmp_path / "lone.npz"
    lone.write_bytes(open(npz, "rb").read())
    assert generate.main([f"--network={lone}", "--seeds=1", f"--outdir={tmp_path}"]) == 2
    assert "--network_kwargs" in capsys.readouterr().err
    assert generate.main([f"--network={lone}", f"--network_kwargs={json.dumps(KWARGS)}",
                          "--seeds=1", f"--outdir={tmp_path}"]) == 0


@pytest.mark.parametrize("name,shape,match", [
    ("synthesis.b8.conv0.noise_const", (4, 4), r"has shape \[4, 4\]; expected \[8, 8\]"),
    ("synthesis.b64.conv0.noise_const", (64, 64), "not a noise buffer of this network"),
])
def test_latent_noise_maps_are_checked(net, tmp_path, capsys, name, shape, match):
    G, _, npz = net
    np.savez(tmp_path / "p.npz", w=np.zeros([1, G.num_ws, G.w_dim], np.float32),
             **{name: np.zeros(shape, np.float32)})
    assert generate.main([f"--network={npz}", f"--latents={tmp_path / 'p.npz'}",
                          f"--outdir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert f"error: --latents: {tmp_path / 'p.npz'}" in err and name in err
    assert re.search(match, err), err
