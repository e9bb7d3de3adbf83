"""VGG16 / LPIPS-VGG16 on tiny random nets: LPIPS properties, a numpy reference of the formula,
converter round trips and name errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo.convert import vgg16 as convert
from gan_zoo.feature_nets import lpips, vgg16

WIDTHS = (4, 8, 8, 16, 16)


def _random_lpips(seed=0):
    net = lpips.LPIPS(WIDTHS)
    x = jnp.zeros((1, 32, 32, 3))
    variables = net.init(jax.random.PRNGKey(seed), x, x)
    rng = np.random.default_rng(seed)
    params = jax.tree.map(np.asarray, variables["params"])
    for k in range(5):  # learned lin weights are non-negative
        params[f"lin{k}"] = rng.uniform(0.1, 1.0, params[f"lin{k}"].shape).astype(np.float32)
    return net, {"params": params}


def _images(seed, n=2, size=32):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


def _np_lpips(params, x0, x1):
    """The LPIPS formula in numpy (float64): scaling, VGG16 taps, unit-normalise, lin, mean."""
    def feats(x):
        x = (x - np.asarray(lpips.SHIFT)) / np.asarray(lpips.SCALE)
        taps = []
        for idx, _ in vgg16.CONVS:
            w, b = params["net"][f"conv{idx}"]["kernel"], params["net"][f"conv{idx}"]["bias"]
            xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
            h, wd = x.shape[1:3]
            x = sum(xp[:, dy:dy + h, dx:dx + wd] @ w[dy, dx] for dy in range(3)
                    for dx in range(3)) + b
            x = np.maximum(x, 0)
            if idx in vgg16.TAPS:
                taps.append(x)
                n, h, wd, c = x.shape
                x = x.reshape(n, h // 2, 2, wd // 2, 2, c).max(axis=(2, 4))
        return taps
    total = 0
    for k, (a, b) in enumerate(zip(feats(x0.astype(np.float64)), feats(x1.astype(np.float64)))):
        a = a / (np.sqrt((a ** 2).sum(-1, keepdims=True)) + 1e-10)
        b = b / (np.sqrt((b ** 2).sum(-1, keepdims=True)) + 1e-10)
        total = total + (((a - b) ** 2) * params[f"lin{k}"]).sum(-1).mean(axis=(1, 2))
    return total


def test_lpips_properties_and_numpy_reference():
    net, v = _random_lpips()
    x, y = _images(0), _images(1)
    d = np.asarray(net.apply(v, x, y))
    np.testing.assert_allclose(np.asarray(net.apply(v, x, x)), 0.0, atol=1e-7)
    np.testing.assert_allclose(np.asarray(net.apply(v, y, x)), d, rtol=1e-6)
    assert np.all(d > 0)
    np.testing.assert_allclose(d, _np_lpips(v["params"], x, y), rtol=1e-4)
    # PPL's distance takes [0, 255] images.
    ppl_d = lpips.ppl_distance(v, net)((x + 1) * 127.5, (y + 1) * 127.5)
    np.testing.assert_allclose(np.asarray(ppl_d), d, rtol=1e-4)


def test_lpips_features_squared_distance_is_lpips():
    """The projector's form: ||F(a) - F(b)||^2 equals the LPIPS distance."""
    net, variables = _random_lpips(1)
    a, b = _images(3), _images(4)
    want = net.apply(variables, a, b)
    fn = lpips.lpips_features(variables)
    got = jnp.sum(jnp.square(fn((a + 1) * 127.5) - fn((b + 1) * 127.5)), axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_lpips_loader_round_trip_and_errors(tmp_path):
    net, v = _random_lpips(1)
    sd = convert.export_lpips(v)
    assert "net.slice1.0.weight" in sd and sd["lin0.model.1.weight"].shape == (1, 4, 1, 1)
    sd["scaling_layer.shift"] = np.asarray(lpips.SHIFT).reshape(1, 3, 1, 1)
    np.savez(tmp_path / "lpips.npz", **sd)
    loaded = convert.load_lpips(tmp_path / "lpips.npz")
    assert convert.lpips_module(loaded) == net
    x, y = _images(2), _images(3)
    np.testing.assert_array_equal(np.asarray(net.apply(loaded, x, y)),
                                  np.asarray(net.apply(v, x, y)))
    bad = dict(sd)
    bad["net.slice1.0.wieght"] = bad.pop("net.slice1.0.weight")
    with pytest.raises(ValueError, match=r"missing names \['net.slice1.0.weight'\].*unexpected"):
        convert.convert_lpips(bad)
    with pytest.raises(ValueError, match="scaling_layer.scale"):
        convert.convert_lpips({**sd, "scaling_layer.scale": np.ones((1, 3, 1, 1))})
    with pytest.raises(FileNotFoundError, match="LPIPS weights: no file"):
        convert.load_lpips(tmp_path / "missing.npz")


def test_vgg16_loader_round_trip_and_features(tmp_path):
    net = vgg16.VGG16(WIDTHS, hidden=16, num_classes=10)
    x = np.random.default_rng(0).integers(0, 256, (2, 20, 20, 3), dtype=np.uint8)
    v = net.init(jax.random.PRNGKey(0), x)
    sd = convert.export_vgg16(v)
    assert sd["features.28.weight"].shape == (16, 16, 3, 3)
    assert sd["classifier.0.weight"].shape == (16, 7 * 7 * 16)
    np.savez(tmp_path / "vgg16.npz", **sd)
    loaded = convert.load_vgg16(tmp_path / "vgg16.npz")
    assert convert.vgg16_module(loaded) == net
    logits, aux = net.apply(loaded, x)
    assert logits.shape == (2, 10) and aux["fc2_relu"].shape == (2, 16)
    np.testing.assert_array_equal(np.asarray(aux["fc2_relu"]), np.maximum(aux["fc2"], 0))
    np.testing.assert_array_equal(np.asarray(logits), np.asarray(net.apply(v, x)[0]))
    with pytest.raises(ValueError, match=r"1 missing names \['classifier.6.bias'\]"):
        convert.convert_vgg16({k: a for k, a in sd.items() if k != "classifier.6.bias"})
