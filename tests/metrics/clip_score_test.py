"""CLIP score (StyleGAN-T): golden embeddings of the tiny open_clip CLIP, evaluate() on 1 vs 8
devices against a direct unsharded computation, config.eval wiring, errors."""
import json
import logging

import jax
import ml_collections
import numpy as np
import pytest

from gan_zoo import metrics
from gan_zoo.convert import clip as clip_convert
from gan_zoo.feature_nets import clip, clip_tokenizer
from gan_zoo.metrics import clip_score, features
from gan_zoo.train import evaluation

CASE = "feat_clip_small"


@pytest.fixture(scope="module")
def case(golden, tmp_path_factory):
    """(weights .npz, model-config .json, JSON meta, arrays) of the golden tiny CLIP."""
    meta = json.loads((golden / f"{CASE}.json").read_text())
    cfg = tmp_path_factory.mktemp("clip") / "model_config.json"
    cfg.write_text(json.dumps(meta["model_config"]))
    with np.load(golden / f"{CASE}.npz") as d:
        arrays = {k: d[k] for k in d.files if not k.startswith("param/")}
    return golden / f"{CASE}.npz", cfg, meta, arrays


@pytest.fixture(scope="module")
def embedder(case):
    return clip_score.load_embedder(case[0], str(case[1]), features.data_mesh())


def test_clip_score_formula():
    a = np.eye(3, 4, dtype=np.float32)
    assert clip_score.clip_score(a, a) == pytest.approx(1.0)
    assert clip_score.clip_score(a, -a) == pytest.approx(-1.0)  # no clamp at 0, no x100
    assert clip_score.clip_score(a, np.roll(a, 1, axis=1)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="one shape"):
        clip_score.clip_score(a, a[:2])


def test_golden_embeddings_and_score(case, embedder):
    """Image and text embeddings equal open_clip's; the score equals the mean of the stored
    normalised embeddings' dot products over the pairs (image i, prompt i)."""
    _, _, meta, arrays = case
    prompts = meta["tokenizer"]["prompts"]
    np.testing.assert_allclose(embedder.texts(prompts),
                               arrays["output/text_embedding_normalized"], atol=1e-5)
    x = arrays["input/image"].transpose(0, 2, 3, 1)  # normalised NCHW -> NHWC
    img01 = (x * np.asarray(clip.OPENAI_STD) + np.asarray(clip.OPENAI_MEAN)).astype(np.float32)
    np.testing.assert_allclose(embedder.images(img01),
                               arrays["output/image_embedding_normalized"], atol=1e-5)
    want = np.mean(np.sum(arrays["output/image_embedding_normalized"]
                          * arrays["output/text_embedding_normalized"][:2], axis=-1))
    got = clip_score.score_batches(embedder, [img01[:1], img01[1:]], [prompts[:1], prompts[1:2]])
    assert got == pytest.approx(float(want), abs=1e-5)


def _samples(seed, n):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    words = ["cat", "dog", "a red car", "ASTRONAUT &amp; horse", "tree"]
    return images, [f"a photo of {words[i]} {seed}" for i in rng.integers(0, 5, n)]


def _sample_fn(key, n):
    return _samples(int(jax.random.randint(key, (), 0, 1 << 30)), n)


def _direct(case, sample_batches) -> float:
    """The score computed without the metric code: model.apply on all samples, unsharded."""
    model, variables = clip_convert.load_clip(case[0], model=clip_score.make_model(str(case[1])))
    images = np.concatenate([b[0] for b in sample_batches])
    prompts = sum((b[1] for b in sample_batches), [])
    x = clip.preprocess_images(images.astype(np.float32) / 255.0, 224)
    img = jax.jit(lambda v, x: model.apply(v, x, normalize=True, method="encode_image"))(
        variables, x)
    txt = jax.jit(lambda v, t: model.apply(v, t, normalize=True, method="encode_text"))(
        variables, clip_tokenizer.tokenize(prompts))
    return float(np.mean(np.sum(np.asarray(img) * np.asarray(txt), axis=-1)))


def test_evaluate_one_vs_eight_devices(case, embedder):
    assert jax.device_count() == 8
    one = clip_score.load_embedder(case[0], str(case[1]), features.data_mesh(jax.devices()[:1]))
    kw = dict(batch_size=2, seed=0)  # 4 samples in 2 batches (one compile per mesh and tower)
    got8 = metrics.evaluate(_sample_fn, None, ["clip_score"], 4, clip=embedder, **kw)
    got1 = metrics.evaluate(_sample_fn, None, ["clip_score"], 4, clip=one, **kw)
    base = jax.random.PRNGKey(0)
    batches = [_sample_fn(jax.random.fold_in(base, i), 2) for i in range(2)]
    want = _direct(case, batches)
    assert got8["clip_score"] == pytest.approx(want, abs=1e-5)
    assert got1["clip_score"] == pytest.approx(got8["clip_score"], abs=1e-5)


def test_evaluate_errors(embedder):
    images_only = lambda key, n: _samples(0, n)[0]
    with pytest.raises(ValueError, match="'clip_score' needs `clip`"):
        metrics.evaluate(_sample_fn, None, ["clip_score"], 2)
    with pytest.raises(ValueError, match="sample_fn must return \\(images, prompts\\)"):
        metrics.evaluate(images_only, None, ["clip_score"], 2, clip=embedder)
    bad = lambda key, n: (_samples(0, n)[0], ["one prompt"])
    with pytest.raises(ValueError, match="2 images came with 1 prompts"):
        metrics.evaluate(bad, None, ["clip_score"], 2, clip=embedder)
    with pytest.raises(ValueError, match="uint8 .* or float"):
        embedder.images(np.zeros((1, 8, 8, 3), np.int32))
    with pytest.raises(ValueError, match="neither a known name"):
        clip_score.make_model("ViT-Q-99")


def test_config_eval_clip_weights(case, caplog):
    cfg = ml_collections.ConfigDict(dict(metrics="clip_score", clip_weights="",
                                         clip_model=str(case[1])))
    with caplog.at_level(logging.WARNING, "gan_zoo.eval"):
        names, kwargs = evaluation.resolve_metrics(cfg)
    assert names == () and "clip" not in kwargs and "config.eval.clip_weights" in caplog.text
    cfg.clip_weights = str(case[0])
    names, kwargs = evaluation.resolve_metrics(cfg, features.data_mesh(jax.devices()[:1]))
    assert names == ("clip_score",) and isinstance(kwargs["clip"], clip_score.ClipEmbedder)
    assert kwargs["clip"].model.visual.width == case[2]["model_config"]["vision_cfg"]["width"]
    assert "clip_score" in metrics.METRICS


def test_protocol_model_is_vit_g14():
    """open_clip ViT-g-14 (StyleGAN-T's CLIP-score network) builds from its config: 1024-d
    embeddings, 40 x 1408-wide image blocks, 24 x 1024-wide text blocks (eval_shape only)."""
    model = clip_score.make_model()
    assert (model.visual.width, model.visual.depth, model.text.layers) == (1408, 40, 24)
    shapes = clip.init_shapes(model)
    assert shapes["params"]["text"]["text_projection"].shape == (1024, 1024)
