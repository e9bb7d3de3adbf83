"""benchmarks/photos_quality.py: real crops score far below noise and flat colour, the
table prints every set, precision/recall in SWD's patch space see noise (precision near 0) and a
few repeated crops (recall far below real's), and bad .npz files name what was expected."""

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
    out = capsys.readouterr().out
    assert "real (floor)" in out and "noise" in out and "avg" in out and "recall" in out


def test_patch_precision_recall_real_near_floor_repeats_low_recall():
    pq = _module()
    real, other = pq.real_crops(64, 32, seed=5), pq.real_crops(64, 32, seed=6)
    repeated = np.repeat(other[:2], 32, axis=0)  # two crops, 32 copies each
    noise = np.random.default_rng(0).integers(0, 256, real.shape, np.uint8)
    pr = pq.precision_recall_table({"real": other, "rep": repeated, "noise": noise}, real, 512)
    avg = {name: np.mean(list(res.values()), axis=0) for name, res in pr.items()}
    assert len(pr["real"]) == 2  # levels 32 and 16
    assert avg["real"][0] > 0.6 and avg["real"][1] > 0.6  # real vs real: the ceiling
    assert avg["rep"][1] < 0.5 * avg["real"][1]  # few images: low recall
    assert avg["noise"][0] < 0.05  # noise patches are nowhere near real ones


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
