"""config.eval.truncation_sweep (issue #15 item 8): --mode=eval's sample metrics at each
truncation, one '<metric>/psi_<value>' entry per value in metrics_<step>.json and one log line
each (StyleGAN-T's FID-CLIP-score curve over psi); CLIP score reads the prompts of the labels the
sampler drew. The tiny BigGAN (truncation 0 = none, > 0 = truncated normal) with stand-in feature
nets (numpy block means: no Inception or CLIP compile) keeps it cheap."""

import json
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo.convert import inception
from gan_zoo.metrics import clip_score
from gan_zoo.train import evaluation, inference, sharding
from gan_zoo.train.loop import build_state
from tests.train._tiny import tiny_config, tiny_networks

PROMPTS = [f"a handwritten digit {i}" for i in range(10)]  # one per class of the tiny G


def _block_means(images):
    """uint8 [N, 16, 16, 3] -> [N, 12]: 2x2 block means (a stand-in feature net)."""
    x = np.asarray(images, np.float32).reshape(len(images), 2, 8, 2, 8, 3).mean(axis=(2, 4))
    return x.reshape(len(images), -1) / 255.0


class _StandInClip:
    """images -> normalised block means; prompts -> normalised one-hot of the digit (recorded)."""

    def __init__(self):
        self.prompts = []

    def images(self, images):
        x = _block_means(images)
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    def texts(self, prompts):
        self.prompts.append(list(prompts))
        return np.eye(12, dtype=np.float32)[[PROMPTS.index(p) for p in prompts]]


@pytest.fixture(scope="module")
def tiny():
    """The tiny BigGAN's initialised state, its config (fid + clip_score, stand-in weights)."""
    config = tiny_config(mesh={"data": 1})
    e = config.eval
    e.metrics, e.num_samples, e.batch_size, e.fid_method = "fid,clip_score", 16, 8, "eigh"
    e.inception, e.clip_weights = "stand-in.npz", "stand-in.npz"
    with config.unlocked():
        config.sample.prompts = PROMPTS
    mesh = sharding.make_mesh(config.mesh)
    recipe, _, _, init = build_state(config, mesh, tiny_networks(config))
    return recipe, init(), config, mesh


@pytest.fixture
def stand_ins(monkeypatch):
    clip = _StandInClip()
    monkeypatch.setattr(inception, "load_inception",
                        lambda path: lambda x: {"pool3": _block_means(x)})
    monkeypatch.setattr(clip_score, "load_embedder", lambda path, model, mesh: clip)
    return clip


def test_sweep_writes_one_entry_per_truncation(tiny, stand_ins, tmp_path, caplog):
    recipe, state, config, mesh = tiny
    with caplog.at_level(logging.INFO, logger="gan_zoo.eval"):
        out = evaluation.evaluate_state(recipe, state, config, str(tmp_path), mesh,
                                        truncations=(0.0, 0.5))
    keys = {"fid/psi_0", "fid/psi_0.5", "clip_score/psi_0", "clip_score/psi_0.5"}
    assert set(out) == {"step"} | keys
    assert all(np.isfinite(out[k]) for k in keys), out
    written = json.loads((tmp_path / "eval" / "metrics_0.json").read_text())
    assert written == pytest.approx(out)
    assert "truncation 0:" in caplog.text and "truncation 0.5:" in caplog.text
    # Truncation changes the images (so both metrics), not the labels: the same prompts.
    assert out["fid/psi_0"] != out["fid/psi_0.5"]
    assert out["clip_score/psi_0"] != out["clip_score/psi_0.5"]
    first, second = stand_ins.prompts[:2], stand_ins.prompts[2:]
    assert first == second and len(first) == 2 and len(set(sum(first, []))) > 2
    # The reals' FID statistics are read once and cached for the second truncation.
    assert len(list((tmp_path / "eval" / "metric_stats").glob("*.npz"))) == 1


def test_prompts_are_those_of_the_drawn_labels(tiny):
    recipe, state, config, _ = tiny
    fn = evaluation.make_sample_fn(recipe, state, config, 0.5, 8, prompts=PROMPTS)
    key = jax.random.PRNGKey(7)
    images, prompts = fn(key, 6)
    assert images.shape == (6, 16, 16, 3) and len(prompts) == 6
    labels = jnp.asarray([PROMPTS.index(p) for p in prompts] + [0, 0])  # padded to 8
    direct = jax.jit(recipe.sample_fn, static_argnums=3)(
        state, jax.random.split(key)[1], labels, 0.5, fn.args[1])
    np.testing.assert_allclose(images, np.asarray(direct)[:6], rtol=1e-5, atol=1e-5)


def test_sweep_values_and_clip_prompts_are_checked(tiny, tmp_path):
    recipe, _, config, _ = tiny
    assert evaluation.truncation_sweep(config.eval) == ()  # default: off
    for bad, match in (("1.0,x", "comma-separated numbers"), ("0.7,0.7", "repeated")):
        config.eval.truncation_sweep = bad
        try:
            with pytest.raises(ValueError, match=f"config.eval.truncation_sweep: .*{match}"):
                inference.evaluate_checkpoint(config, str(tmp_path))  # before any restore
        finally:
            config.eval.truncation_sweep = ""
    config.eval.truncation_sweep = " 1.0, 0.9,0.7 "
    assert evaluation.truncation_sweep(config.eval) == (1.0, 0.9, 0.7)
    config.eval.truncation_sweep = ""
    with config.unlocked():
        config.sample.prompts = PROMPTS[:3]
    try:
        with pytest.raises(ValueError, match="clip_score needs config.sample.prompts, one per"):
            evaluation.sample_prompts(recipe, config)
    finally:
        config.sample.prompts = PROMPTS
