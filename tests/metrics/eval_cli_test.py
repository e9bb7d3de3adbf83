"""config.eval: `--mode=eval` / `inference.evaluate_checkpoint` on a tiny trained checkpoint,
periodic evaluation in the trainer, weights skipped with a log line, 1 vs 8 devices."""

import importlib
import json
import logging
import os
import subprocess
import sys

import flax
import jax
import numpy as np
import pytest

from gan_zoo import train
from gan_zoo.convert import inception
from gan_zoo.convert import vgg16 as convert_vgg16
from gan_zoo.feature_nets import vgg16
from gan_zoo.train import evaluation, inference
from tests.conftest import REPO
from tests.train._tiny import tiny_config, tiny_networks

evaluate_mod = importlib.import_module("gan_zoo.metrics.evaluate")


def _config(**overrides):
    c = tiny_config(**{"train.num_steps": 2, "checkpoint.every_steps": 2, **overrides})
    c.eval.num_samples, c.eval.batch_size, c.eval.fid_method = 8, 8, "eigh"
    return c


@pytest.fixture(scope="module")
def inception_npz(tmp_path_factory):
    """A random-init Inception saved as a torch-named .npz (the rFID draw, reused: one init)."""
    variables = evaluate_mod._rfid_variables(0)
    path = tmp_path_factory.mktemp("weights") / "inception_random.npz"
    np.savez(path, **inception.to_state_dict(variables))
    loaded = inception.load_inception(path)  # round trip
    for a, b in zip(flax.traverse_util.flatten_dict(variables).values(),
                    flax.traverse_util.flatten_dict(loaded).values()):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    return str(path)


@pytest.fixture(scope="module")
def vgg16_npz(tmp_path_factory):
    """A tiny random VGG16 (same layer names, narrow widths) as a torchvision-named .npz."""
    net = vgg16.VGG16((4, 4, 8, 8, 8), hidden=16, num_classes=10)
    variables = net.init(jax.random.PRNGKey(0), np.zeros((1, 16, 16, 3), np.uint8))
    path = tmp_path_factory.mktemp("weights") / "vgg16_tiny.npz"
    np.savez(path, **convert_vgg16.export_vgg16(variables))
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step tiny run with periodic evaluation (swd) every 2 steps."""
    workdir = tmp_path_factory.mktemp("trained")
    config = _config(**{"eval.every": 2, "eval.metrics": "swd"})
    train.run(config, str(workdir), networks=tiny_networks(config))
    return workdir


def test_periodic_eval_writes_json(trained):
    out = json.loads((trained / "eval" / "metrics_2.json").read_text())
    assert out["step"] == 2 and np.isfinite(out["swd"]) and out["swd"] > 0


def test_eval_checkpoint_metrics_and_devices_agree(trained, inception_npz, vgg16_npz):
    """Restored onto 1 and 8 devices, the sharded-feature metrics (pr: VGG16, swd) agree; the
    Inception metrics run on 8 only (their features agree across device counts in
    inception_metrics_test, and each extra mesh is a full Inception compile)."""
    results = {}
    for mesh, names in (({"data": 1}, "pr,swd"), ({"data": -1}, "rfid,kid,is,pr,swd")):
        config = _config(**{"eval.metrics": names, "eval.inception": inception_npz,
                            "eval.vgg16": vgg16_npz, "mesh": mesh})
        results[mesh["data"]] = inference.evaluate_checkpoint(config, str(trained),
                                                              networks=tiny_networks(config))
    one, eight = results[1], results[-1]
    assert set(one) == {"step", "precision", "recall", "swd", "swd/16"}
    assert set(eight) == set(one) | {"rfid", "kid", "kid_std", "is", "is_std"}
    assert all(np.isfinite(v) for v in eight.values()), eight
    for k in one:
        assert one[k] == pytest.approx(eight[k], rel=1e-4, abs=1e-6), k
    written = json.loads((trained / "eval" / "metrics_2.json").read_text())
    assert written == pytest.approx(eight)


def test_without_inception_skips_with_message(trained, caplog):
    config = _config(**{"eval.metrics": "fid,kid,swd,pr"})
    with caplog.at_level(logging.WARNING, logger="gan_zoo.eval"):
        out = inference.evaluate_checkpoint(config, str(trained), networks=tiny_networks(config))
    assert "skipping ['fid', 'kid']: set config.eval.inception to pt_inception" in caplog.text
    assert "skipping pr: set config.eval.vgg16" in caplog.text
    assert set(out) >= {"step", "swd"} and "fid" not in out
    with pytest.raises(ValueError, match="config.eval.metrics: unknown"):
        inference.evaluate_checkpoint(_config(**{"eval.metrics": "fid,bogus"}), str(trained),
                                       networks=tiny_networks(config))


@pytest.mark.slow
def test_cli_train_then_eval(tmp_path, inception_npz):
    """experiments/main.py end to end on the BigGAN digits preset (real networks)."""
    common = [sys.executable, str(REPO / "experiments" / "main.py"),
              "--config=configs/biggan.py:digits", f"--workdir={tmp_path}",
              "--config.train.num_steps=2", "--config.train.batch_size=8",
              "--config.checkpoint.every_steps=2",
              "--config.checkpoint.use_async=False", "--config.log.image_every_steps=0",
              "--config.log.sv_every_steps=0", "--config.sample.standing_stats_batches=1",
              "--config.eval.num_samples=8", "--config.eval.batch_size=8",
              "--config.eval.fid_method=eigh"]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    subprocess.run(common, cwd=REPO, env=env, check=True, capture_output=True)
    run = subprocess.run(common + ["--mode=eval", "--config.eval.metrics=kid",
                                   f"--config.eval.inception={inception_npz}"],
                         cwd=REPO, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads((tmp_path / "eval" / "metrics_2.json").read_text())
    assert set(out) == {"step", "kid", "kid_std"} and out["step"] == 2


def test_real_batches_uint8_and_pooled_to_the_generated_resolution():
    config = _config()  # digits at 16x16
    full = list(evaluation.real_batches(config, 5, 4)())
    assert [b.shape for b in full] == [(4, 16, 16, 3), (1, 16, 16, 3)]
    assert full[0].dtype == np.uint8 and full[0].max() > 200 and full[0].min() < 50
    pooled = list(evaluation.real_batches(config, 5, 4, resolution=8)())
    assert [b.shape for b in pooled] == [(4, 8, 8, 3), (1, 8, 8, 3)]
    box = full[0].astype(np.float64).reshape(4, 8, 2, 8, 2, 3).mean(axis=(2, 4))
    assert np.abs(pooled[0] - box).max() <= 1.0  # box average (then x * 127.5 + 128, truncated)
    with pytest.raises(ValueError, match="must divide config.model.resolution"):
        evaluation.real_batches(config, 5, 4, resolution=6)
