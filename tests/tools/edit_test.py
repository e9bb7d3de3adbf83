"""gan_zoo.tools.edit (generate --mode=mix / interp) on a tiny random class-conditional
StyleGAN-XL generator: per-layer w sources of the mixing grid, classes per row / column, class and
latent interpolation endpoints, each against direct G.apply calls."""

import functools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from gan_zoo.models import stylegan_xl
from gan_zoo.tools import edit, generate, sampling
from gan_zoo.train import writers


@functools.lru_cache(maxsize=1)
def tiny_xl():
    """(G, variables): imagenet_test (10 classes, num_ws 7) at 16^2, random per-class w_avg so
    class-conditional truncation changes the image."""
    G = stylegan_xl.generator("imagenet_test", img_resolution=16)
    variables = jax.jit(G.init)({"params": jax.random.PRNGKey(0)}, jnp.zeros([1, G.z_dim]),
                                jnp.eye(G.c_dim)[:1])
    w_avg = 0.5 * jax.random.normal(jax.random.PRNGKey(3), (G.c_dim, G.w_dim))
    stats = {**variables["ema_stats"], "mapping": {"w_avg": w_avg}}
    return G, {**variables, "ema_stats": stats}


def _ws(G, variables, seed, cls, psi=1.0):
    """f(z of seed, one-hot cls) -> [num_ws, w_dim] (official z = RandomState(seed).randn)."""
    z = np.random.RandomState(seed).randn(1, G.z_dim).astype(np.float32)
    c = jnp.eye(G.c_dim)[cls][None]
    return np.asarray(G.apply(variables, jnp.asarray(z), c, psi=psi, method="map"))[0]


def _image(G, variables, ws):
    """uint8 [H, W, C] of one ws [num_ws, w_dim]: g(ws) (G.synthesize, noise 'const') in a
    batch of 8, the shape the runners below use, so one compile serves all."""
    img = sampling.synthesize(G, variables, np.repeat(np.asarray(ws)[None], 8, axis=0))
    return writers.to_uint8(img)[0]


def _close(a, b):
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def _args(tmp_path, *argv):
    tmp_path.mkdir(parents=True, exist_ok=True)
    return generate.build_parser().parse_args([f"--outdir={tmp_path}", *argv])


def test_mix_cells_take_each_layer_from_the_right_source(tmp_path):
    G, v = tiny_xl()
    args = _args(tmp_path, "--mode=mix", "--row_seeds=1-2", "--col_seeds=7,8",
                 "--row_classes=3", "--col_classes=5,6", "--styles=2-4", "--trunc=0.7")
    paths = edit.run_mix(args, G, v)
    rows = [_ws(G, v, s, 3, 0.7) for s in (1, 2)]
    cols = [_ws(G, v, s, k, 0.7) for s, k in ((7, 5), (8, 6))]
    mixed = sampling.mix_ws(np.stack(rows), np.stack(cols), [2, 3, 4])  # [R, C, num_ws, w_dim]
    for i in range(2):
        for j in range(2):
            for layer in range(G.num_ws):  # per-layer source of the cell's ws
                src = cols[j] if layer in (2, 3, 4) else rows[i]
                np.testing.assert_array_equal(mixed[i, j, layer], src[layer])
            cell = np.asarray(Image.open(tmp_path / f"{(1, 2)[i]}-{(7, 8)[j]}.png"))
            _close(cell, _image(G, v, mixed[i, j]))
    assert str(tmp_path / "grid.png") in paths
    assert np.abs(_image(G, v, mixed[0, 0]).astype(int) - _image(G, v, rows[0])).max() > 8


def test_mix_with_the_same_w_in_rows_and_columns_is_plain_sampling(tmp_path):
    G, v = tiny_xl()
    edit.run_mix(_args(tmp_path / "mix", "--mode=mix", "--row_seeds=4,4", "--col_seeds=4,4",
                       "--class=2", "--styles=0-3"), G, v)
    args = _args(tmp_path / "img", "--seeds=4-11", "--class=2")
    generate.run_images(args, G, v)
    plain = np.asarray(Image.open(tmp_path / "img" / "seed0004.png"))
    _close(np.asarray(Image.open(tmp_path / "mix" / "4-4.png")), plain)
    _close(plain, _image(G, v, _ws(G, v, 4, 2)))


def test_class_interpolation_endpoints_are_the_class_samples(tmp_path):
    G, v = tiny_xl()
    args = _args(tmp_path, "--mode=interp", "--seeds=9", "--classes=1,4,7", "--frames=5",
                 "--trunc=0.8")
    paths = edit.run_interp(args, G, v)
    assert len(paths) == 9 + 1  # (3 keyframes - 1) x (5 - 1) + 1 frames, strip
    ends = [_ws(G, v, 9, k, 0.8) for k in (1, 4, 7)]
    for frame, w in ((0, ends[0]), (4, ends[1]), (8, ends[2])):
        _close(np.asarray(Image.open(tmp_path / f"frame{frame:04d}.png")), _image(G, v, w))
    mid = np.asarray(Image.open(tmp_path / "frame0002.png"))
    _close(mid, _image(G, v, 0.5 * ends[0] + 0.5 * ends[1]))


def test_latent_interpolation_endpoints_are_the_seed_samples(tmp_path):
    G, v = tiny_xl()
    args = _args(tmp_path, "--mode=interp", "--seeds=2,3", "--class=6", "--frames=8")
    edit.run_interp(args, G, v)
    _close(np.asarray(Image.open(tmp_path / "frame0000.png")), _image(G, v, _ws(G, v, 2, 6)))
    _close(np.asarray(Image.open(tmp_path / "frame0007.png")), _image(G, v, _ws(G, v, 3, 6)))


def test_keyframes_pair_seeds_and_classes():
    ns = lambda seeds, classes: generate.build_parser().parse_args(
        ["--outdir=o", f"--seeds={seeds}", f"--classes={classes}"])
    assert edit.keyframes(ns("5", "1-3")) == ([5, 5, 5], [1, 2, 3])
    assert edit.keyframes(ns("1-4", "0,9")) == ([1, 2, 3, 4], [0, 9, 0, 9])


@pytest.mark.parametrize("extra, match", [
    (["--mode=interp", "--seeds=1", "--classes=1,10"], r"--classes: classes \[10\]"),
    (["--mode=interp", "--seeds=1", "--classes=3"], "at least 2 keyframes"),
    (["--mode=mix", "--row_seeds=1", "--col_seeds=2", "--row_classes=x"], "--row_classes"),
])
def test_errors_name_the_flag(tmp_path, extra, match):
    G, v = tiny_xl()
    args = _args(tmp_path, *extra)
    with pytest.raises(ValueError, match=match):
        generate.RUNNERS[args.mode](args, G, v)


def test_mp4_needs_imageio_ffmpeg(tmp_path):
    pytest.importorskip("imageio")
    try:
        import imageio_ffmpeg  # noqa: F401
        pytest.skip("imageio-ffmpeg is installed")
    except ImportError:
        pass
    G, v = tiny_xl()
    with pytest.raises(ValueError, match="--mp4: needs imageio-ffmpeg"):
        edit.run_interp(_args(tmp_path, "--mode=interp", "--seeds=1,2", "--mp4=30"), G, v)


def test_classes_on_an_unconditional_generator():
    G = types.SimpleNamespace(c_dim=0)
    with pytest.raises(ValueError, match="--col_classes: the network is unconditional"):
        edit.one_hot(G, [1], "--col_classes")
