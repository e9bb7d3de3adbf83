"""benchmarks/photos_quality.py: real crops score far below noise and flat colour, the
table prints every set, per-image precision/recall/FD put real vs real near the ceiling, one
repeated crop at recall near 0 and noise at precision near 0, and bad .npz files name what was
expected."""

import numpy as np
import pytest

from tests.benchmarks import load_script


def _module():
    return load_script("photos_quality")


def test_real_crops_score_below_flat_colour_and_noise(tmp_path, capsys):
    pq = _module()
    real = pq.real_crops(64, 32, seed=5)
    assert real.shape == (64, 32, 32, 3) and real.dtype == np.uint8
    np.testing.assert_array_equal(real, pq.real_crops(64, 32, seed=5))  # deterministic
    # Each image one flat colour (its mean): right colours, no edges or texture.
    flat = np.broadcast_to(real.mean(axis=(1, 2), keepdims=True), real.shape).astype(np.uint8)
    np.savez(tmp_path / "s.npz", images=real)
    np.savez(tmp_path / "f.npz", images=flat)
    res = pq.main([str(tmp_path / "s.npz"), "--init", str(tmp_path / "f.npz")])
    assert res["samples"]["swd"] < 0.6 * res["init"]["swd"]
    assert res["real (floor)"]["swd"] < 0.6 * res["init"]["swd"]
    assert res["real (floor)"]["swd"] < 0.6 * res["noise"]["swd"]
    assert res["samples"]["recall"] > 0.6 and res["noise"]["precision"] < 0.05
    assert res["init"]["recall"] < 0.05  # flat colour: no texture at all
    assert res["real (floor)"]["fd"] < 0.25 * res["init"]["fd"]
    out = capsys.readouterr().out
    assert "real (floor)" in out and "noise" in out and "avg" in out and "recall" in out
    assert "FD" in out


def test_per_image_precision_recall_fd_real_one_repeated_crop_noise():
    pq = _module()
    real, other = pq.real_crops(64, 32, seed=5), pq.real_crops(64, 32, seed=6)
    repeated = np.repeat(other[:1], 64, axis=0)  # one crop, 64 copies
    noise = np.random.default_rng(0).integers(0, 256, real.shape, np.uint8)
    feats = pq.feature_space(real)(real)
    # Levels 32 and 16: 7 octave bands each, + a 4x4x3 layout; 3 blocks of unit total variance.
    assert feats.shape == (64, 7 + 7 + 48)
    np.testing.assert_allclose(feats.var(0).sum(), 3.0, rtol=1e-4)
    div = pq.diversity_table({"real": other, "rep": repeated, "noise": noise}, real)
    assert div["real"]["precision"] > 0.75 and div["real"]["recall"] > 0.75  # the ceiling
    assert div["rep"]["recall"] < 0.05  # one image covers none of the real variety
    assert div["noise"]["precision"] < 0.05  # far more fine-scale energy than any photo
    assert div["real"]["fd"] < 0.25 * min(div["rep"]["fd"], div["noise"]["fd"])


def test_bad_inputs_name_what_was_expected(tmp_path):
    pq = _module()
    np.savez(tmp_path / "x.npz", labels=np.zeros(2))
    with pytest.raises(ValueError, match="expected an array 'images'"):
        pq.load_images(str(tmp_path / "x.npz"))
    np.savez(tmp_path / "y.npz", images=np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="uint8 images"):
        pq.load_images(str(tmp_path / "y.npz"))
    np.savez(tmp_path / "a.npz", images=np.zeros((4, 32, 32, 3), np.uint8))
    np.savez(tmp_path / "b.npz", images=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="samples' shape"):
        pq.main([str(tmp_path / "a.npz"), "--init", str(tmp_path / "b.npz")])
