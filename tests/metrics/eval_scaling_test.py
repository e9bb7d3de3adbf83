"""Issue #17 item 4: evaluation that scales. Images are streamed through the feature nets (peak
memory independent of num_samples), the EMA sampler runs once sharded over 'data' (same samples
on 1 and 8 devices, ~1/8 of the work per device), and the real side follows fid50k_full (no
flips, the whole dataset capped by config.eval.num_real, cache keyed by dataset and protocol)."""

import tracemalloc

import jax
import numpy as np
import pytest

from gan_zoo import metrics
from gan_zoo.train import evaluation, sharding
from gan_zoo.train.loop import build_state
from tests.train._tiny import tiny_config, tiny_networks

SIZE = 32  # 3 KiB per uint8 image: kept images would dominate the traced peak


def _images(key_or_seed, n):
    seed = key_or_seed
    if not isinstance(seed, int):  # a PRNG key from evaluate()
        seed = int(jax.random.key_data(seed)[-1])
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def _tiny_inception(images):
    """A stand-in feature net: 8x8 block means -> 48-d 'pool3' (numpy: no compile)."""
    x = images.reshape(len(images), 4, SIZE // 4, 4, SIZE // 4, 3).mean(axis=(2, 4))
    return {"pool3": x.reshape(len(images), -1).astype(np.float32)}


def _peak_bytes(num_samples: int) -> int:
    """tracemalloc peak of evaluate(fid) over num_samples generated and as many real images."""
    reals = lambda: (_images(10_000 + i, 50) for i in range(num_samples // 50))
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = metrics.evaluate(_images, reals, ["fid"], num_samples, inception=_tiny_inception,
                               batch_size=50, fid_method="eigh")
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert np.isfinite(out["fid"])
    return peak


def test_eval_peak_memory_does_not_grow_with_num_samples():
    small, large = _peak_bytes(500), _peak_bytes(2000)
    # Kept images would add 1,500 x 2 x 3 KiB = 9 MiB; one batch of 50 is 150 KiB.
    assert large < 1.2 * small, (small, large)
    assert large < 2 * 2**20, large


@pytest.fixture(scope="module")
def states():
    """The tiny BigGAN's state (same init) on a 1-device and on the 8-device 'data' mesh."""
    out = {}
    for n in (1, 8):
        config = tiny_config(mesh={"data": n})
        mesh = sharding.make_mesh(config.mesh)
        recipe, _, _, init = build_state(config, mesh, tiny_networks(config))
        out[n] = (recipe, init(), config, mesh)
    return out


def test_sampler_runs_once_sharded_and_matches_one_device(states):
    assert jax.device_count() == 8
    samples, flops = {}, {}
    for n, (recipe, state, config, mesh) in states.items():
        fn = evaluation.make_sample_fn(recipe, state, config, 0.0, 6, mesh)  # 6: padded to 8
        key = jax.random.PRNGKey(3)
        compiled = fn.draw.lower(*fn.args, key).compile()
        samples[n] = np.asarray(compiled(*fn.args, key))[:6]
        assert compiled.output_shardings.spec == jax.sharding.PartitionSpec("data")
        flops[n] = compiled.cost_analysis()["flops"]
    assert samples[1].shape == (6, 16, 16, 3)
    np.testing.assert_allclose(samples[8], samples[1], rtol=1e-5, atol=1e-5)
    # Each of the 8 devices runs G on its rows only (replicated would be flops[8] ~ flops[1]).
    assert flops[8] < 0.3 * flops[1], flops


def test_eval_on_eight_devices_equals_one(states, tmp_path):
    out = {}
    for n, (recipe, state, config, mesh) in states.items():
        config.eval.metrics, config.eval.num_samples, config.eval.batch_size = "swd", 16, 6
        out[n] = evaluation.evaluate_state(recipe, state, config, str(tmp_path / str(n)), mesh)
    assert set(out[1]) == {"step", "swd", "swd/16"}
    assert out[8] == pytest.approx(out[1], rel=1e-5)


class _Sized:
    num_examples = 1234


def test_real_protocol_whole_dataset_no_flips_and_cache_key():
    config = tiny_config()
    config.data.flip = True
    source = evaluation.real_source(config)
    assert source.flip is False and config.data.flip is True  # the train config is unchanged
    e = config.eval
    e.num_samples, e.num_real = 100, 0
    assert evaluation.real_count(e, _Sized()) == (1234, "noflip-full")  # the whole dataset
    e.num_real = 1000
    assert evaluation.real_count(e, _Sized()) == (1000, "noflip-full")  # capped
    assert evaluation.real_count(e, source) == (1000, "noflip-stream")  # size unknown
    e.num_real = 0
    assert evaluation.real_count(e, source) == (100, "noflip-stream")
    keys = set()
    for path in ("", "/data/ffhq.zip", "/other/ffhq.zip"):
        with config.unlocked():
            config.data.path = path
        keys.add(evaluation.dataset_key(config, 16))
    assert len(keys) == 3 and "digits-16" in keys
    assert evaluation.dataset_key(config, 8) != evaluation.dataset_key(config, 16)


def test_stats_cache_is_keyed_by_the_real_protocol(tmp_path):
    reals = lambda: iter([_images(7, 50), _images(8, 50)])
    kw = dict(inception=_tiny_inception, batch_size=50, workdir=tmp_path, fid_method="eigh",
              dataset_name="toy-32", num_real=100)
    for tag in ("noflip-full", "noflip-stream", "noflip-full"):
        metrics.evaluate(_images, reals, ["fid"], 100, real_protocol=tag, **kw)
    assert len(list((tmp_path / "metric_stats").glob("toy-32-*.npz"))) == 2
    again = metrics.evaluate(_images, None, ["fid"], 100, real_protocol="noflip-full", **kw)
    assert np.isfinite(again["fid"])  # from the cache: no real images read


def test_reals_of_a_data_path_are_the_whole_dataset_once_without_flips(tmp_path):
    from PIL import Image  # noqa: PLC0415

    images = _images(5, 7)[:, :16, :16]  # 7 distinct 16x16 images, asymmetric (a flip shows)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"{i:03d}.png")
    config = tiny_config(**{"data.path": str(folder), "data.flip": True})
    source = evaluation.real_source(config)
    num, tag = evaluation.real_count(config.eval, source)
    assert (num, tag) == (7, "noflip-full")
    got = np.concatenate(list(evaluation.real_batches(config, num, 3, 16, source)()))
    # to_uint8 (x * 127.5 + 128, truncated) of the [-1, 1] floats gives back each uint8 value.
    assert sorted(map(bytes, got)) == sorted(map(bytes, images))
