"""Undecodable images (folder files, TFDS records) are counted, named, skipped, and past
data.max_bad_records stop the run naming them (issue #19 item 5)."""

import io
import logging

import numpy as np
import pytest
from ml_collections import ConfigDict

from gan_zoo.data import Layout, make_source
from gan_zoo.data.sources import BadRecords, BadRecordsError, bad_record_limit

N_GOOD = 6


def _cfg(**kw):
    base = dict(name="folder", data_dir="", split="train", flip=False, shuffle_buffer=16,
                prefetch=1)
    return ConfigDict({**base, **kw})


def _png_bytes(value: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _brightness(i: int) -> int:  # good file i is a flat image of this value
    return 30 * i + 20


def _folder_with_bad_files(root):
    """N_GOOD flat PNGs plus a zero-byte .png, a text file named .png and a truncated JPEG."""
    from PIL import Image

    root.mkdir()
    for i in range(N_GOOD):
        (root / f"good{i}.png").write_bytes(_png_bytes(_brightness(i)))
    (root / "empty.png").write_bytes(b"")
    (root / "text.png").write_text("not an image\n")
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 99, np.uint8)).save(buf, format="JPEG")
    (root / "cut.jpg").write_bytes(buf.getvalue()[:200])  # header kept, scan data cut
    return ["cut.jpg", "empty.png", "text.png"]


def _values(images):
    """Each example's flat value in 0..255 (images are flat, in [-1, 1])."""
    return np.rint((images.reshape(len(images), -1).mean(axis=1) + 1) * 127.5).astype(int)


def _stream(src, layout, start, steps):
    it = src.batches(layout, start_step=start)
    return np.concatenate([next(it)["image"].reshape(-1, 8, 8, 3) for _ in range(steps)])


def test_folder_bad_files_are_named_once_and_replaced_by_good_ones(tmp_path, caplog):
    bad_names = _folder_with_bad_files(tmp_path / "imgs")
    src = make_source(_cfg(data_dir=str(tmp_path / "imgs"), max_bad_records=3), 8, seed=2)
    layout = Layout(1, 1, 3)
    with caplog.at_level(logging.WARNING, logger="gan_zoo.data"):
        whole = _stream(src, layout, 0, 9)  # 27 examples: 3 epochs of the 9 files
    assert set(_values(whole)) <= {_brightness(i) for i in range(N_GOOD)}  # only good images
    named = [r.getMessage() for r in caplog.records if "undecodable" in r.getMessage()]
    assert len(named) == len(bad_names), named  # each logged once, not once per epoch
    for name in bad_names:
        assert sum(name in m for m in named) == 1, (name, named)
    # Replacement depends only on the batch, so a resumed stream is the same.
    np.testing.assert_array_equal(_stream(src, layout, 4, 3), whole[12:21])


def test_folder_more_bad_files_than_allowed_stops_naming_them(tmp_path):
    bad_names = _folder_with_bad_files(tmp_path / "imgs")
    src = make_source(_cfg(data_dir=str(tmp_path / "imgs"), max_bad_records=2), 8, seed=2)
    with pytest.raises(BadRecordsError, match=r"data.max_bad_records") as err:
        _stream(src, Layout(1, 1, 3), 0, 9)
    assert sum(name in str(err.value) for name in bad_names) == 3, str(err.value)
    assert "data.data_dir=" in str(err.value)


def test_tfds_bad_record_is_named_by_its_record_id(tmp_path, caplog):
    pytest.importorskip("tensorflow_datasets")
    from tests.data.tiny_tfds import BAD_NAME, GanZooTinyArrayBad  # records 10, 30, bad, 70

    GanZooTinyArrayBad(data_dir=str(tmp_path)).download_and_prepare()
    cfg = _cfg(name=BAD_NAME, data_dir=str(tmp_path), max_bad_records=1)
    src = make_source(cfg, 8, seed=0)
    with caplog.at_level(logging.WARNING, logger="gan_zoo.data"):
        images = _stream(src, Layout(1, 1, 3), 0, 4)  # 4 epochs of the 3 good records
    assert set(_values(images)) == {10, 30, 70}
    named = [r.getMessage() for r in caplog.records if "undecodable" in r.getMessage()]
    assert len(named) == 1 and f"{BAD_NAME}-train.tfrecord" in named[0], named
    strict = make_source(ConfigDict(dict(cfg, max_bad_records=0)), 8, seed=0)
    with pytest.raises(BadRecordsError, match=r"tfrecord"):
        _stream(strict, Layout(1, 1, 3), 0, 4)


def test_limit_is_a_fraction_below_one_and_a_count_above():
    assert bad_record_limit(_cfg(), 10_000) == 10  # default: 0.1% of the dataset
    assert bad_record_limit(_cfg(max_bad_records=0.05), 200) == 10
    assert bad_record_limit(_cfg(max_bad_records=7), 200) == 7
    assert bad_record_limit(_cfg(max_bad_records=0), 200) == 0
    with pytest.raises(ValueError, match=r"data.max_bad_records=-1"):
        bad_record_limit(_cfg(max_bad_records=-1), 200)


def test_a_batch_without_good_examples_stops_the_run():
    bad = BadRecords(limit=10, where="data.data_dir='x'")
    batch = {"image": np.zeros((1, 1, 2, 4)), "label": np.zeros((1, 1, 2), np.int32)}
    ids = np.array([[[b"a.png", b"b.png"]]])
    with pytest.raises(BadRecordsError, match=r"whole batch.*a.png, b.png"):
        bad.fill(batch, np.zeros((1, 1, 2), bool), ids, lead=3)
    # One good example: the bad slot takes its values.
    out = bad.fill({"image": np.arange(2.0).reshape(1, 1, 2, 1), "label": np.array([[[5, 6]]])},
                   np.array([[[False, True]]]), ids, lead=3)
    assert out["image"].ravel().tolist() == [1.0, 1.0] and out["label"].ravel().tolist() == [6, 6]
