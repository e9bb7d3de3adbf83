"""Image-caption sources (gan_zoo.data.captions): pairs, per-host sharding, resume, bad records."""

import io
import logging
import tarfile

import numpy as np
import pytest
from ml_collections import ConfigDict

from gan_zoo.data import captions
from gan_zoo.data.sources import BadRecordsError, Layout
from gan_zoo.feature_nets.clip_tokenizer import tokenize

RES = 8


def _cfg(**kw):
    return ConfigDict({**dict(name="caption_folder", data_dir="", flip=False), **kw})


def _png(value: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((12, 12, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _value(i: int) -> int:  # record i is a flat image of this value
    return 20 * i + 10


def _values(images):
    return np.rint((images.reshape(len(images), -1).mean(axis=1) + 1) * 127.5).astype(int)


def _pairs(batch):
    """(record index from the image value, token row) per example."""
    idx = (_values(batch["image"].reshape(-1, RES, RES, 3)) - 10) // 20
    return idx, batch["tokens"].reshape(len(idx), -1)


def _take(src, layout, start, steps):
    it = src.batches(layout, start_step=start)
    return [next(it) for _ in range(steps)]


def test_digits_captions_name_the_right_digit():
    from sklearn.datasets import load_digits

    labels = load_digits().target
    src = captions.SOURCES["digits_captions"](_cfg(name="digits_captions"), 8, seed=1)
    for i in (0, 1, 2, 3, 100, 1796):
        image, caption, _ = src.load(i)
        assert captions.DIGIT_WORDS[labels[i]] in caption.split()
        assert caption == src.load(i)[1]  # deterministic per record
    assert len({src.load(i)[1].replace(captions.DIGIT_WORDS[labels[i]], "#")
                for i in range(8)}) == len(captions.PHRASINGS)
    # A batch's tokens are the caption of the digit its image shows.
    images = np.stack([src.load(i)[0] for i in range(src.num_records)])
    batch = _take(src, Layout(1, 1, 6), 0, 1)[0]
    for img, tok in zip(batch["image"].reshape(-1, 8, 8, 3), batch["tokens"].reshape(6, -1)):
        u8 = np.rint((img + 1) * 127.5).astype(np.uint8)
        i = int(np.flatnonzero((images == u8).all(axis=(1, 2, 3)))[0])
        assert [tok.tolist()] == tokenize([captions.digit_caption(labels[i], i)]).tolist()


def _folder(root, n=6):
    (root / "sub").mkdir(parents=True)
    for i in range(n):
        d = root / "sub" if i % 2 else root
        (d / f"im{i}.png").write_bytes(_png(_value(i)))
        (d / f"im{i}.txt").write_text(f"caption number {i}\n")
    return root


def test_folder_pairs_host_sharding_and_resume(tmp_path):
    src = captions.SOURCES["caption_folder"](_cfg(data_dir=str(_folder(tmp_path))), RES, seed=3)
    run = _take(src, Layout(1, 1, 4), 0, 4)  # 16 records: crosses 2 epochs of 6
    for b in run:  # each image carries its own caption
        idx, tok = _pairs(b)
        np.testing.assert_array_equal(tok, tokenize([f"caption number {i}" for i in idx]))
    first = np.concatenate([_pairs(b)[0] for b in run])
    assert sorted(first[:6]) == list(range(6)) and sorted(first[6:12]) == list(range(6))
    # Two hosts: each epoch of a host's stream is its own half; disjoint and complete.
    halves = []
    for p in (0, 1):
        b = _take(src, Layout(1, 1, 6, p, 2), 0, 1)[0]  # 3 per host = one host epoch
        halves.append(sorted(_pairs(b)[0]))
    assert sorted(halves[0] + halves[1]) == list(range(6))
    for start in (1, 3):
        resumed = _take(src, Layout(1, 1, 4), start, 1)[0]
        np.testing.assert_array_equal(resumed["tokens"], run[start]["tokens"])
        np.testing.assert_array_equal(resumed["image"], run[start]["image"])


def test_folder_bad_records_are_counted_and_named(tmp_path, caplog):
    root = _folder(tmp_path / "d")
    (root / "empty.png").write_bytes(_png(1))
    (root / "empty.txt").write_text("  \n")
    (root / "nocap.png").write_bytes(_png(2))
    (root / "broken.png").write_bytes(b"not an image")
    (root / "broken.txt").write_text("a caption")
    src = captions.SOURCES["caption_folder"](_cfg(data_dir=str(root), max_bad_records=5), RES, 0)
    with caplog.at_level(logging.WARNING, logger="gan_zoo.data"):
        batches = _take(src, Layout(1, 1, 9), 0, 6)
    names = " ".join(src.bad.ids)
    assert len(src.bad.ids) == 3
    for what in ("empty.png (empty caption)", "nocap.png (missing caption)",
                 "broken.png (undecodable image"):
        assert what in names and what in caplog.text
    for b in batches:  # bad examples were replaced by good pairs
        idx, tok = _pairs(b)
        assert set(idx) <= set(range(6))
        np.testing.assert_array_equal(tok, tokenize([f"caption number {i}" for i in idx]))


def _shards(root, n_shards=3, per=4, bad=()):
    root.mkdir()
    for s in range(n_shards):
        with tarfile.open(root / f"shard-{s:03d}.tar", "w") as tar:
            for k in range(per):
                i = s * per + k
                text = b"" if i in bad else f"caption number {i}".encode()
                for name, data in ((f"{i:06d}.png", _png(_value(i))), (f"{i:06d}.txt", text)):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return root


def test_tar_shards_pairs_disjoint_hosts_and_resume(tmp_path):
    cfg = _cfg(name="caption_tar", data_dir=str(_shards(tmp_path / "s")))
    src = captions.SOURCES["caption_tar"](cfg, RES, seed=7)
    # One epoch per host: host 0 reads shards 0 and 2, host 1 shard 1; disjoint and complete.
    seen = []
    for p, n in ((0, 8), (1, 4)):
        stream = src.records(Layout(1, 1, 2, p, 2))
        ids = [next(stream)[2] for _ in range(n)]
        assert len(set(ids)) == n
        seen += ids
    assert sorted(k.rsplit(":", 1)[1] for k in seen) == [f"{i:06d}" for i in range(12)]
    layout = Layout(1, 1, 6, 0, 2)  # 3 per step on host 0: crosses shard and epoch borders
    run = _take(src, layout, 0, 5)
    for b in run:
        idx, tok = _pairs(b)
        np.testing.assert_array_equal(tok, tokenize([f"caption number {i}" for i in idx]))
        assert set(idx) <= set(range(4)) | set(range(8, 12))
    for start in (1, 3, 4):
        resumed = _take(src, layout, start, 1)[0]
        np.testing.assert_array_equal(resumed["image"], run[start]["image"])
        np.testing.assert_array_equal(resumed["tokens"], run[start]["tokens"])


def test_tar_bad_records_named_and_limit(tmp_path):
    cfg = _cfg(name="caption_tar", data_dir=str(_shards(tmp_path / "s", 1, 4, bad=(2,))),
               max_bad_records=1)
    src = captions.SOURCES["caption_tar"](cfg, RES, seed=0)
    _take(src, Layout(1, 1, 4), 0, 2)
    assert list(src.bad.ids) == [f"{tmp_path / 's' / 'shard-000.tar'}:000002 (empty caption)"]
    strict = captions.SOURCES["caption_tar"](cfg.copy_and_resolve_references(), RES, seed=0)
    strict.data_cfg.max_bad_records = 0
    with pytest.raises(BadRecordsError, match="000002 \\(empty caption\\)"):
        _take(strict, Layout(1, 1, 4), 0, 2)
    with pytest.raises(FileNotFoundError, match="no .tar shards"):
        captions.SOURCES["caption_tar"](_cfg(data_dir=str(tmp_path / "none")), RES, 0)


def test_tfds_captions_pairs_hosts_resume_and_bad(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")

    class GanZooTinyCaptions(tfds.core.GeneratorBasedBuilder):
        """6 images whose value encodes the index, 2 captions each; #5 has none (test only)."""

        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(12, 12, 3)),
                "captions": tfds.features.Sequence({"text": tfds.features.Text()})}))

        def _split_generators(self, dl_manager):
            del dl_manager
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i in range(6):
                texts = [] if i == 5 else [f"caption number {i}", f"a photo of number {i}"]
                yield i, {"image": np.full((12, 12, 3), _value(i), np.uint8),
                          "captions": {"text": texts}}

    GanZooTinyCaptions(data_dir=str(tmp_path)).download_and_prepare()
    cfg = _cfg(name="tfds_captions", tfds_name="gan_zoo_tiny_captions", data_dir=str(tmp_path),
               max_bad_records=1, shuffle_buffer=4)
    src = captions.SOURCES["tfds_captions"](cfg, RES, seed=2)
    run = _take(src, Layout(1, 1, 4), 0, 4)  # 16 records: 2 epochs and a bit
    for b in run:
        idx, tok = _pairs(b)
        assert 5 not in idx  # the caption-less example was replaced
        for i, row in zip(idx, tok):
            assert row.tolist() in tokenize([f"caption number {i}",
                                             f"a photo of number {i}"]).tolist()
    assert len(src.bad.ids) == 1 and "(missing caption)" in next(iter(src.bad.ids))
    resumed = _take(src, Layout(1, 1, 4), 2, 1)[0]
    np.testing.assert_array_equal(resumed["image"], run[2]["image"])
    np.testing.assert_array_equal(resumed["tokens"], run[2]["tokens"])
    ids = [[r[2] for r, _ in zip(src.records(Layout(1, 1, 2, p, 2)), range(3))] for p in (0, 1)]
    assert len(set(ids[0] + ids[1])) == 6  # hosts' examples disjoint and complete


def test_digits_captions_host_halves_and_resume():
    src = captions.SOURCES["digits_captions"](_cfg(name="digits_captions", flip=True), 8, seed=4)
    whole = _take(src, Layout(1, 2, 4), 0, 3)
    hosts = [_take(src, Layout(1, 2, 4, p, 2), 0, 3) for p in (0, 1)]
    for s in range(3):  # host p holds samples [2 p, 2 p + 2) of each micro-batch
        for k in ("image", "tokens"):
            joined = np.concatenate([hosts[0][s][k], hosts[1][s][k]], axis=2)
            np.testing.assert_array_equal(joined, whole[s][k])
    resumed = _take(src, Layout(1, 2, 4), 2, 1)[0]
    for k in ("image", "tokens"):
        np.testing.assert_array_equal(resumed[k], whole[2][k])
