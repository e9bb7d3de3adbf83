"""gan_zoo.tools.generate / project on tiny random StyleGAN3 generators (configs T and R) exported
as official state dicts: seeds with truncation, style mixing, interpolation and the projector
(no noise inputs), each against direct G.apply calls."""

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from gan_zoo.convert import stylegan2 as sg2_convert
from gan_zoo.convert import stylegan3 as sg3_convert
from gan_zoo.tools import generate, project, projector
from gan_zoo.train import writers

# Official Generator(**init_kwargs) of a 16x16 StyleGAN3 with 4 synthesis layers (num_ws = 6).
KWARGS = dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=16, img_channels=3, channel_base=256,
              channel_max=16, num_layers=4, num_critical=1, mapping_kwargs=dict(num_layers=1))
CONFIGS = {"T": dict(conv_kernel=3, use_radial_filters=False),
           "R": dict(conv_kernel=1, use_radial_filters=True)}


@functools.lru_cache(maxsize=2)
def tiny_generator(config: str):
    """(G, variables): random init, magnitude EMAs set from one batch (so the images use the
    full range), and a random non-zero w_avg (so truncation changes the image)."""
    G = sg3_convert.generator_from_kwargs(dict(KWARGS, **CONFIGS[config]))
    variables = jax.jit(G.init)({"params": jax.random.PRNGKey(0)}, jnp.zeros([1, G.z_dim]), None)
    z = jax.random.normal(jax.random.PRNGKey(1), (16, G.z_dim))
    once = dataclasses.replace(G, magnitude_ema_beta=0.0)  # the EMA becomes this batch's value
    _, stats = once.apply(variables, z, None, update_emas=True, mutable=["ema_stats"])
    w_avg = 0.5 * jax.random.normal(jax.random.PRNGKey(2), (G.w_dim,))
    stats["ema_stats"]["mapping"]["w_avg"] = w_avg
    return G, {**variables, **stats}


def export(G, variables, directory) -> str:
    """Writes G.npz (torch names, with the design-time filters) and G.json; returns the .npz."""
    state = sg2_convert.export_state_dict(variables)
    filters = sg3_convert.design_filters(G)
    for layer in variables["ema_stats"]["synthesis"]:
        for kind in ("up_filter", "down_filter"):
            f = filters(f"synthesis.{layer}.{kind}")
            if f is not None:
                state[f"synthesis.{layer}.{kind}"] = np.asarray(f)
    np.savez(directory / "G.npz", **state)
    kwargs = dict(KWARGS, **CONFIGS["R" if G.use_radial_filters else "T"])
    (directory / "G.json").write_text(json.dumps(
        {"class_name": "training.networks_stylegan3.Generator", "init_kwargs": kwargs}))
    return str(directory / "G.npz")


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def net(request, tmp_path_factory):
    G, variables = tiny_generator(request.param)
    return G, variables, export(G, variables, tmp_path_factory.mktemp(f"sg3{request.param}"))


def _ws(G, variables, seeds, psi=1.0, cutoff=None):
    z = np.concatenate([np.random.RandomState(s).randn(1, G.z_dim) for s in seeds])
    return G.apply(variables, jnp.asarray(z, jnp.float32), None, psi=psi, cutoff=cutoff,
                   method="map")


def _image(G, variables, ws):
    """uint8 [N, H, W, C] of g(ws)."""
    return writers.to_uint8(G.apply(variables, jnp.asarray(ws), method="synthesize")[0])


def _png(path):
    return np.asarray(Image.open(path))


def _close(a, b):
    """uint8 images equal up to one rounding step (batched vs single-sample float sums)."""
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def _run(*argv):
    assert generate.main(list(argv)) == 0


def test_seeds_with_truncation_match_direct_apply(net, tmp_path):
    G, variables, npz = net
    args = [f"--network={npz}", "--seeds=1,4", "--trunc=0.5", "--trunc_cutoff=2"]
    _run(*args, f"--outdir={tmp_path / 'a'}")
    _run(*args, f"--outdir={tmp_path / 'b'}", "--noise_mode=random", "--noise_seed=3")
    for i, s in enumerate((1, 4)):
        z = np.random.RandomState(s).randn(1, G.z_dim).astype(np.float32)
        img, _ = G.apply(variables, jnp.asarray(z), None, psi=0.5, cutoff=2)
        want = writers.to_uint8(img)[0]
        got = _png(tmp_path / "a" / f"seed{s:04d}.png")
        _close(got, want)
        # No noise inputs in StyleGAN3: noise_mode and noise_seed change nothing.
        np.testing.assert_array_equal(got, _png(tmp_path / "b" / f"seed{s:04d}.png"))
        untruncated = _image(G, variables, _ws(G, variables, [s]))[0]
        assert np.abs(untruncated.astype(int) - want).max() > 8  # psi matters here


def test_mix_cells_take_coarse_from_row_and_fine_from_column(net, tmp_path):
    G, variables, npz = net
    _run(f"--network={npz}", "--mode=mix", "--row_seeds=1-2", "--col_seeds=3-4", "--styles=3-5",
         f"--outdir={tmp_path}")
    rows, cols = np.asarray(_ws(G, variables, [1, 2])), np.asarray(_ws(G, variables, [3, 4]))
    grid = _png(tmp_path / "grid.png")
    assert grid.shape == (3 * 16, 3 * 16, 3)
    cell = lambda i, j: grid[i * 16:(i + 1) * 16, j * 16:(j + 1) * 16]
    for i in range(2):
        for j in range(2):
            mixed = rows[i].copy()
            mixed[3:] = cols[j, 3:]  # ws 0-2 (coarse) from the row, 3-5 (fine) from the column
            want = _image(G, variables, mixed[None])[0]
            _close(cell(i + 1, j + 1), want)
            _close(_png(tmp_path / f"{i + 1}-{j + 3}.png"), want)
            assert np.abs(cell(i + 1, j + 1).astype(int) - cell(i + 1, 0)).max() > 8
            assert np.abs(cell(i + 1, j + 1).astype(int) - cell(0, j + 1)).max() > 8
    _close(cell(0, 1), _image(G, variables, cols[:1])[0])
    _close(cell(2, 0), _image(G, variables, rows[1:])[0])


def test_interp_frames_are_lerps_in_w(net, tmp_path):
    G, variables, npz = net
    _run(f"--network={npz}", "--mode=interp", "--seeds=1,2", "--frames=3", "--no_singles",
         f"--outdir={tmp_path}")
    strip = _png(tmp_path / "strip.png")
    assert strip.shape == (16, 3 * 16, 3)
    ws = np.asarray(_ws(G, variables, [1, 2]))
    want = _image(G, variables, np.stack([ws[0], 0.5 * (ws[0] + ws[1]), ws[1]]))
    for k in range(3):
        _close(strip[:, k * 16:(k + 1) * 16], want[k])


def _psnr(a, b) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def test_project_recovers_generated_image_without_noise_maps(net, tmp_path, capsys):
    G, variables, npz = net
    target = _image(G, variables, _ws(G, variables, [5]))[0]
    Image.fromarray(target).save(tmp_path / "t.png")
    out = tmp_path / "out"
    assert project.main([f"--network={npz}", f"--target={tmp_path / 't.png'}", f"--outdir={out}",
                         "--num_steps=150", "--w_avg_samples=500", "--log_every=150"]) == 0
    assert "noise_reg 0\n" in capsys.readouterr().out
    with np.load(out / "projected_w.npz") as f:
        assert f.files == ["w"]  # StyleGAN3: no noise maps
        w = f["w"]
    with np.load(out / "projection_log.npz") as f:
        assert not f["reg"].any()
    proj = _png(out / "proj.png")
    w_avg, _ = projector.w_stats(G, variables, 500)  # the projector's starting point
    start = _image(G, variables, jnp.broadcast_to(w_avg, (1, G.num_ws, G.w_dim)))[0]
    assert _psnr(proj, target) > 28 and _psnr(start, target) < 22, (  # 32-34 and 18-19 dB
        _psnr(proj, target), _psnr(start, target))
    _close(proj, _image(G, variables, w)[0])
    # generate renders the projected w as proj.png.
    _run(f"--network={npz}", f"--latents={out / 'projected_w.npz'}", f"--outdir={out}")
    _close(_png(out / "latent0000.png"), proj)
