"""TFDS through Grain (issue #17 item 1): a split prepared as ArrayRecord is read by index
(exact resume at step k, each epoch a permutation, disjoint and complete 2-host shards); one
prepared as tfrecord is still read as a stream, with a log line on how to resume exactly."""

import logging

import numpy as np
import pytest
from ml_collections import ConfigDict

from gan_zoo.data import Layout, grain_source, make_source
from gan_zoo.data.sources import BadRecordsError

pytest.importorskip("tensorflow_datasets")
pytest.importorskip("array_record")
from tests.data.tiny_tfds import BAD_NAME, NAME, GanZooTinyArrayBad, N  # noqa: E402


@pytest.fixture(scope="module")
def data_dirs(tiny_tfds_dir):
    """The tiny builder prepared twice: as ArrayRecord and as tfrecord (the TFDS default)."""
    return {f: tiny_tfds_dir(f) for f in ("array_record", "tfrecord")}


def _cfg(data_dir, loader="grain"):
    return ConfigDict(dict(name=NAME, data_dir=data_dir, split="train", flip=True, path="",
                           shuffle_buffer=4, max_bad_records=0, loader=loader))


def _images(src, layout, start, steps):
    it = src.batches(layout, start)
    batches = [next(it) for _ in range(steps)]
    return (np.concatenate([b["image"].reshape(-1, 8, 8, 3) for b in batches]),
            np.concatenate([b["label"].reshape(-1) for b in batches]))


def _record_index(images):
    """Record index from the brightest pixel (the un-halved half, wherever a flip put it)."""
    top = np.rint((images.max(axis=(1, 2, 3)) + 1) * 127.5)
    return ((top - 10) / 20).astype(int)


def test_array_record_is_read_by_index_and_resumes_exactly(data_dirs):
    src = make_source(_cfg(data_dirs["array_record"]), 8, seed=3)
    assert isinstance(src, grain_source.GrainSource) and src.n_classes == 3
    layout = Layout(1, 1, 3)
    images, labels = _images(src, layout, 0, 6)  # 18 examples: 2 epochs and a bit
    idx = _record_index(images)
    np.testing.assert_array_equal(labels, idx % 3)
    for e in range(2):
        assert sorted(idx[N * e:N * e + N]) == list(range(N))
    assert list(idx[:N]) != list(idx[N:2 * N])  # another permutation each epoch
    flipped = images[:, :, 0].mean(axis=(1, 2)) > images[:, :, -1].mean(axis=(1, 2))
    assert 0 < flipped.sum() < len(flipped)
    resumed, resumed_labels = _images(src, layout, 4, 2)  # mid-epoch start: examples 12..17
    np.testing.assert_array_equal(resumed, images[12:])
    np.testing.assert_array_equal(resumed_labels, labels[12:])


def test_array_record_two_hosts_disjoint_and_complete(data_dirs):
    src = make_source(_cfg(data_dirs["array_record"]), 8, seed=1)
    # Host 0 reads stored records 0, 2, 4, 6 and host 1 records 1, 3, 5 (TFDS stores them in
    # a hashed order, so not generator indices 0, 2, ...): 8 examples = one epoch and a bit.
    got = [_record_index(_images(src, Layout(1, 1, 8, p, 2), 0, 1)[0])[:n]
           for p, n in ((0, 4), (1, 3))]
    assert len(set(got[0].tolist())) == 4 and len(set(got[1].tolist())) == 3
    assert sorted(np.concatenate(got).tolist()) == list(range(N))


def test_array_record_with_the_native_loader_names_the_field(data_dirs):
    with pytest.raises(ValueError, match="only data.loader='grain' reads"):
        make_source(_cfg(data_dirs["array_record"], loader="native"), 8, seed=0)


def test_tfrecord_is_still_read_as_a_stream(data_dirs, caplog):
    with caplog.at_level(logging.INFO, logger="gan_zoo.data"):
        src = make_source(_cfg(data_dirs["tfrecord"]), 8, seed=3)
    assert not isinstance(src, grain_source.GrainSource)
    assert "--file_format=array_record" in caplog.text and "skips" in caplog.text
    images, labels = _images(src, Layout(1, 1, 3), 0, 3)  # 9 examples: one epoch and a bit
    idx = _record_index(images)
    assert sorted(idx[:N]) == list(range(N))
    np.testing.assert_array_equal(labels, idx % 3)


def test_array_record_bad_record_is_named_and_replaced(tmp_path, caplog):
    GanZooTinyArrayBad(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
    cfg = dict(_cfg(str(tmp_path)), name=BAD_NAME, max_bad_records=1)
    src = make_source(ConfigDict(cfg), 8, seed=0)
    with caplog.at_level(logging.WARNING, logger="gan_zoo.data"):
        images, labels = _images(src, Layout(1, 1, 4), 0, 2)  # all 4 records in each step
    assert set(_record_index(images).tolist()) == {0, 1, 3} and 2 not in labels
    named = [r.getMessage() for r in caplog.records if "undecodable" in r.getMessage()]
    assert len(named) == 1 and "train[" in named[0], named
    strict = make_source(ConfigDict(dict(cfg, max_bad_records=0)), 8, seed=0)
    with pytest.raises(BadRecordsError, match=r"gan_zoo_tiny_array_bad.*train\["):
        _images(strict, Layout(1, 1, 4), 0, 1)
