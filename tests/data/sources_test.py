"""Data sources: the built-in datasets, per-host sharding, folders and missing datasets."""

import numpy as np
import pytest
from ml_collections import ConfigDict

from gan_zoo.data import Layout, make_source


def _cfg(**kw):
    base = dict(name="digits", data_dir="", split="train", flip=False, shuffle_buffer=16,
                prefetch=1)
    return ConfigDict({**base, **kw})


def test_digits_batches_are_deterministic_and_in_range():
    src = make_source(_cfg(), 32, seed=3)
    assert src.n_classes == 10
    a = next(src.batches(Layout(2, 1, 8), start_step=5))
    b = next(src.batches(Layout(2, 1, 8), start_step=5))
    assert a["image"].shape == (2, 1, 8, 32, 32, 3) and a["image"].dtype == np.float32
    assert a["label"].shape == (2, 1, 8) and a["label"].dtype == np.int32
    assert -1.0 <= a["image"].min() < 0 < a["image"].max() <= 1.0
    np.testing.assert_array_equal(a["image"], b["image"])


def test_hosts_read_disjoint_shards_of_the_global_batch():
    src = make_source(_cfg(flip=True), 16, seed=0)
    whole = next(src.batches(Layout(1, 2, 8)))
    parts = [next(src.batches(Layout(1, 2, 8, process_index=p, process_count=2)))
             for p in range(2)]
    np.testing.assert_array_equal(np.concatenate([p["image"] for p in parts], axis=2),
                                  whole["image"])


def test_photos_are_unconditional_crops():
    src = make_source(_cfg(name="photos", flip=True), 32, seed=0)
    b = next(src.batches(Layout(1, 1, 4)))
    assert src.n_classes == 1 and b["image"].shape == (1, 1, 4, 32, 32, 3)
    assert np.all(b["label"] == 0)


def test_image_folder_labels_from_subfolders(tmp_path):
    from PIL import Image

    for k, cls in enumerate(["cat", "dog"]):
        (tmp_path / cls).mkdir()
        for i in range(3):
            image = Image.fromarray(np.full((20, 30, 3), 100 * k, np.uint8))
            image.save(tmp_path / cls / f"{i}.png")
    src = make_source(_cfg(name="folder", data_dir=str(tmp_path), flip=True), 8, seed=0)
    b = next(src.batches(Layout(1, 1, 6)))
    assert src.n_classes == 2 and b["image"].shape == (1, 1, 6, 8, 8, 3)
    # Class 0 images are black (-1), class 1 images are grey (100 / 127.5 - 1).
    means = b["image"].mean(axis=(3, 4, 5))[0, 0]
    np.testing.assert_allclose(means, np.where(b["label"][0, 0] == 0, -1.0, 100 / 127.5 - 1),
                               atol=1e-5)


def test_missing_tfds_dataset_says_how_to_prepare_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"tfds build cifar10 --data_dir="):
        make_source(_cfg(name="cifar10", data_dir=str(tmp_path)), 32, seed=0)


def test_missing_folder_says_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data.data_dir=.*image folder not found"):
        make_source(_cfg(name="folder", data_dir=str(tmp_path / "nope")), 32, seed=0)


def _stream(src, layout, start_step, steps):
    """Images of `steps` consecutive batches from start_step, flattened to [examples, ...]."""
    it = src.batches(layout, start_step=start_step)
    return np.concatenate([next(it)["image"].reshape(-1, *src_shape(src)) for _ in range(steps)])


def src_shape(src):
    return (src.resolution, src.resolution, 3)


def _write_indexed_images(root, n):
    """n PNGs whose pixel value encodes the file index; left half darker (flip-visible)."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        a = np.full((8, 8, 3), 20 * i + 10, np.uint8)
        a[:, :4] //= 2
        Image.fromarray(a).save(root / f"{i:02d}.png")


def _file_index(images):
    """Stream images -> file index (from the mean brightness, flip-invariant)."""
    mean = (images.mean(axis=(1, 2, 3)) + 1) * 127.5  # = 0.75 * (20 i + 10) up to rounding
    return np.rint((mean / 0.75 - 10) / 20).astype(int)


def test_folder_stream_resumes_exactly_and_reshuffles_each_epoch(tmp_path):
    _write_indexed_images(tmp_path / "imgs", 5)
    src = make_source(_cfg(name="folder", data_dir=str(tmp_path / "imgs"), flip=True), 8, seed=4)
    layout = Layout(1, 1, 2)
    whole = _stream(src, layout, 0, 6)  # 12 examples: two full epochs and a bit
    np.testing.assert_array_equal(_stream(src, layout, 3, 3), whole[6:])
    idx = _file_index(whole)
    for e in range(2):  # every epoch is a permutation of the 5 files
        assert sorted(idx[5 * e:5 * e + 5]) == list(range(5))
    assert list(idx[:5]) != list(idx[5:10])  # ... a different one each epoch
    # Random flips: some examples flipped, and the flip is the same on resume (checked above).
    flipped = whole[:, :, 0].mean(axis=(1, 2)) > whole[:, :, -1].mean(axis=(1, 2))
    assert 0 < flipped.sum() < len(flipped)


def test_tfds_stream_resumes_exactly(tiny_tfds_dir):
    from tests.data import tiny_tfds  # noqa: PLC0415

    data_dir = tiny_tfds_dir("tfrecord")  # the TFDS default: read as a stream
    src = make_source(_cfg(name=tiny_tfds.NAME, data_dir=data_dir, flip=True, shuffle_buffer=4),
                      8, seed=1)
    assert src.n_classes == 3
    layout = Layout(1, 1, 3)
    whole = _stream(src, layout, 0, 6)  # 18 examples: 2 epochs and a bit
    np.testing.assert_array_equal(_stream(src, layout, 4, 2), whole[12:])
    np.testing.assert_array_equal(_stream(src, layout, 1, 2), whole[3:9])  # mid-epoch start
    idx = _file_index(whole)
    n = tiny_tfds.N
    for e in range(2):
        assert sorted(idx[n * e:n * e + n]) == list(range(n))
