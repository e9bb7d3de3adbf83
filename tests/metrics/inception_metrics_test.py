"""Metrics through the FID Inception: 1 vs 8 devices, evaluate(), the stats cache, the fid tool."""
import contextlib
import io

import jax
import numpy as np
import pytest

from gan_zoo import metrics
from gan_zoo.convert import inception
from gan_zoo.metrics import features
from gan_zoo.tools import fid as fid_tool


@pytest.fixture(scope="module")
def variables(golden):
    return inception.load_inception(golden / "feat_inception_fid.npz")


def _images(seed, n, size=32):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_one_and_eight_devices_agree(variables):
    assert jax.device_count() == 8
    x = _images(0, 3)
    one = features.InceptionFeatures(variables, ("pool3", "sfid"),
                                      features.data_mesh(jax.devices()[:1]))(x)
    eight = features.InceptionFeatures(variables, ("pool3", "sfid"), features.data_mesh())(x)
    for k in ("pool3", "sfid"):
        assert one[k].shape == eight[k].shape == (3, inception.inception_v3.FEATURE_DIMS[k])
        # Float32 rounding of two programs (batch 3 on one device, 1 per device on eight): at
        # the tests' LLVM -O0 (tests/conftest.py) up to 1.4e-4 relative apart, 1e-5 at -O3. A
        # sharding bug (a per-shard statistic, a missing gather) moves features far more.
        np.testing.assert_allclose(one[k], eight[k], rtol=5e-4, atol=1e-4)


def test_evaluate_and_stats_cache(variables, tmp_path):
    reals = _images(1, 16)
    sample_fn = lambda key, n: _images(int(jax.random.randint(key, (), 0, 1 << 30)), n)
    kw = dict(inception=variables, batch_size=8, seed=0, workdir=tmp_path, dataset_name="toy",
              mesh=features.data_mesh(jax.devices()[:1]), kid_subsets=5, ms_ssim_pairs=8,
              fid_method="eigh")
    out = metrics.evaluate(sample_fn, [reals[:8], reals[8:]], ["fid", "kid", "is", "sfid",
                                                                "swd", "ms_ssim"], 16, **kw)
    assert set(out) >= {"fid", "kid", "kid_std", "is", "is_std", "sfid", "swd", "ms_ssim"}
    assert all(np.isfinite(v) for v in out.values()), out
    assert out["fid"] > 0 and out["is"] >= 1.0
    # Cached real statistics: no real images needed the second time, same value.
    again = metrics.evaluate(sample_fn, None, ["fid"], 16, **kw)
    assert again["fid"] == pytest.approx(out["fid"], rel=1e-9)
    assert len(list((tmp_path / "metric_stats").glob("toy-*.npz"))) == 2  # fid, sfid
    with pytest.raises(ValueError, match="unknown metrics"):
        metrics.evaluate(sample_fn, None, ["fjd"], 4, **kw)
    with pytest.raises(ValueError, match="uint8"):
        metrics.evaluate(sample_fn, [reals.astype(np.float32)], ["kid"], 4, **kw)


def test_fid_tool(golden, tmp_path):
    x = _images(2, 3)
    np.savez(tmp_path / "a.npz", images=x)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert fid_tool.main([str(tmp_path / "a.npz"), str(tmp_path / "a.npz")]) == 2
    assert "pt_inception-2015-12-05-6726825d.pth" in err.getvalue() and "--rfid" in err.getvalue()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = fid_tool.main([str(tmp_path / "a.npz"), str(tmp_path / "a.npz"),
                            f"--inception={golden / 'feat_inception_fid.npz'}", "--num_devices=1"])
    last = out.getvalue().strip().splitlines()[-1]
    assert rc == 0 and last.startswith("FID: ") and abs(float(last[5:])) < 1e-3
