"""rFID from a saved random Inception (StyleGAN-XL §4.1: only comparable with one fixed file):
`convert.inception.save_rfid_weights`, `evaluate(rfid_inception=...)`, `config.eval.rfid_weights`
and `tools.fid --rfid=FILE` give exactly the rFID of the same weights drawn from the seed."""

import contextlib
import importlib
import io
import logging

import flax
import jax
import numpy as np
import pytest

from gan_zoo import metrics
from gan_zoo.convert import inception
from gan_zoo.metrics import features
from gan_zoo.tools import fid as fid_tool
from gan_zoo.train import evaluation
from tests.train._tiny import tiny_config

evaluate_mod = importlib.import_module("gan_zoo.metrics.evaluate")
ONE_DEVICE = features.data_mesh(jax.devices()[:1])  # one Inception compile for the whole file


def _images(seed, n, size=32):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """rFID's seed-0 Inception saved through save_rfid_weights, and a copy with one BN scale
    changed (other weights)."""
    folder = tmp_path_factory.mktemp("rfid")
    path = inception.save_rfid_weights(folder / "inception_rand.npz", seed=0)
    with np.load(path) as data:
        sd = dict(data)
    sd["Mixed_7c.branch_pool.bn.weight"] = sd["Mixed_7c.branch_pool.bn.weight"] * 3.0
    np.savez(folder / "other.npz", **sd)
    return path, str(folder / "other.npz")


def test_saved_file_round_trips_the_seed_weights(saved):
    loaded = inception.load_inception(saved[0])
    seeded = flax.traverse_util.flatten_dict(evaluate_mod._rfid_variables(0))
    loaded = flax.traverse_util.flatten_dict(loaded)
    assert seeded.keys() == loaded.keys()
    for k in seeded:
        np.testing.assert_array_equal(np.asarray(seeded[k]), np.asarray(loaded[k]), str(k))
    with pytest.raises(ValueError, match="must end in .npz"):
        inception.save_rfid_weights(saved[0] + ".pkl")


def test_evaluate_rfid_from_file_equals_seed(saved):
    reals = _images(1, 2)  # Inception runs at 299x299 whatever the input: keep the sets tiny
    sample_fn = lambda key, n: _images(int(jax.random.randint(key, (), 0, 1 << 30)), n)
    kw = dict(batch_size=2, seed=0, mesh=ONE_DEVICE, fid_method="eigh")
    run = lambda **w: metrics.evaluate(sample_fn, [reals], ["rfid"], 2, **w, **kw)["rfid"]
    from_seed = run(rfid_seed=0)
    from_file = run(rfid_inception=inception.load_inception(saved[0]))
    other = run(rfid_inception=inception.load_inception(saved[1]))
    assert np.isfinite(from_seed) and from_seed > 0
    assert from_file == from_seed  # the same weights, bit for bit
    assert abs(other - from_seed) > 1e-6 * from_seed  # the file's weights are the ones used


def test_eval_config_rfid_weights(saved, caplog):
    cfg = tiny_config().eval
    cfg.metrics, cfg.rfid_weights = "rfid", saved[0]
    names, kwargs = evaluation.resolve_metrics(cfg, ONE_DEVICE)
    assert names == ("rfid",) and set(kwargs) == {"rfid_inception"}
    cfg.rfid_weights, cfg.rfid_seed = "", 3
    with caplog.at_level(logging.WARNING, logger="gan_zoo.eval"):
        names, kwargs = evaluation.resolve_metrics(cfg, ONE_DEVICE)
    assert names == ("rfid",) and kwargs == {"rfid_seed": 3}
    assert "not comparable with published rFID" in caplog.text
    cfg.rfid_weights = str(saved[0]) + ".missing.npz"
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        evaluation.resolve_metrics(cfg, ONE_DEVICE)


def test_fid_tool_rfid_file_equals_seed(saved, tmp_path):
    np.savez(tmp_path / "a.npz", images=_images(2, 2))
    np.savez(tmp_path / "b.npz", images=_images(3, 2))
    values = {}
    for flag in ("--rfid", f"--rfid={saved[0]}"):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = fid_tool.main([str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), flag,
                                "--num_devices=1"])
        last = out.getvalue().strip().splitlines()[-1]
        assert rc == 0 and last.startswith("rFID: "), (out.getvalue(), err.getvalue())
        values[flag] = float(last[6:])
        assert ("not comparable with published rFID" in err.getvalue()) == (flag == "--rfid")
    seed, same = values.values()
    assert np.isfinite(seed) and seed == same
