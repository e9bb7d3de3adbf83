"""data.loader='grain' (gan_zoo.data.grain_source): the same batches as the native loaders for
a seed and step, exact resume at step k, disjoint and complete 2-host shards."""

import json
import sys

import numpy as np
import pytest
from ml_collections import ConfigDict
from PIL import Image

from gan_zoo.data import Layout, grain_source, make_source

N_IMAGES = 10  # image i is filled with the value 20 * i and labelled i
RES = 8


def _cfg(loader, **kw):
    base = dict(name="digits", data_dir="", split="train", flip=True, path="",
                max_bad_records=0.5, loader=loader)
    base.update(kw)
    return ConfigDict(base)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """N_IMAGES constant PNGs with dataset.json labels, plus one undecodable .png (bad/)."""
    root = tmp_path_factory.mktemp("grain_images")
    (root / "00000").mkdir()
    labels = []
    for i in range(N_IMAGES):
        name = f"00000/img{i:08d}.png"
        Image.fromarray(np.full((RES, RES, 3), 20 * i, np.uint8)).save(root / name)
        labels.append([name, i])
    (root / "dataset.json").write_text(json.dumps({"labels": labels}))
    bad = tmp_path_factory.mktemp("grain_bad")
    for i in range(5):
        Image.fromarray(np.full((RES, RES, 3), 40 * i, np.uint8)).save(bad / f"{i}.png")
    (bad / "9.png").write_bytes(b"not a png")
    return root, bad


def _steps(src, layout, start, count):
    it = src.batches(layout, start)
    return [next(it) for _ in range(count)]


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape and a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_import_gan_zoo_does_not_import_grain():
    import subprocess  # noqa: PLC0415

    code = ("import sys, gan_zoo, gan_zoo.data; print(sorted({m.split('.')[0] for m in "
            "sys.modules} & {'grain', 'tensorflow', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_builtin_same_batches_as_native_and_resume():
    layout = Layout(2, 1, 4)
    grain = make_source(_cfg("grain"), RES, seed=3)
    assert isinstance(grain, grain_source.GrainSource) and grain.n_classes == 10
    native = _steps(make_source(_cfg("native"), RES, seed=3), layout, 0, 3)
    for a, b in zip(_steps(grain, layout, 0, 3), native):
        _assert_same(a, b)
    _assert_same(_steps(grain, layout, 2, 1)[0], native[2])  # resume at step 2


def test_builtin_two_hosts_split_the_global_batch():
    src = make_source(_cfg("grain"), RES, seed=1)
    full = _steps(src, Layout(1, 1, 6), 4, 1)[0]
    hosts = [_steps(src, Layout(1, 1, 6, p, 2), 4, 1)[0] for p in range(2)]
    for k in full:
        np.testing.assert_array_equal(np.concatenate([h[k] for h in hosts], axis=2), full[k])


def test_archive_same_batches_as_native_across_epochs_and_resume(folder):
    layout = Layout(1, 2, 3)  # 6 examples a step: steps straddle the 10-image epochs
    grain = make_source(_cfg("grain", path=str(folder[0])), RES, seed=5)
    native = _steps(make_source(_cfg("native", path=str(folder[0])), RES, seed=5), layout, 0, 5)
    assert isinstance(grain, grain_source.GrainSource)
    run = _steps(grain, layout, 0, 5)
    for a, b in zip(run, native):
        _assert_same(a, b)
    first_epoch = np.concatenate([b["label"].reshape(-1) for b in run])[:N_IMAGES]
    assert sorted(first_epoch.tolist()) == list(range(N_IMAGES))  # each image once an epoch
    images = np.concatenate([b["image"].reshape(-1, RES, RES, 3) for b in run])
    labels = np.concatenate([b["label"].reshape(-1) for b in run])
    np.testing.assert_allclose(images[..., 0, 0, 0], 20 * labels / 127.5 - 1, atol=1e-6)
    _assert_same(_steps(grain, layout, 3, 1)[0], run[3])  # resume at step 3 = batch 3


def test_archive_two_hosts_disjoint_and_complete(folder):
    src = make_source(_cfg("grain", path=str(folder[0]), flip=False), RES, seed=2)
    per_host = N_IMAGES // 2  # one step = one epoch of each host's images
    got = [_steps(src, Layout(1, 1, 2 * per_host, p, 2), 0, 1)[0]["label"].reshape(-1)
           for p in range(2)]
    assert not set(got[0].tolist()) & set(got[1].tolist())
    assert sorted(np.concatenate(got).tolist()) == list(range(N_IMAGES))


def test_archive_bad_record_replaced_as_native(folder):
    layout = Layout(1, 1, 6)  # the 6 records once a step: the bad one is in every batch
    grain = _steps(make_source(_cfg("grain", path=str(folder[1])), RES, seed=0), layout, 0, 2)
    native = _steps(make_source(_cfg("native", path=str(folder[1])), RES, seed=0), layout, 0, 2)
    for a, b in zip(grain, native):
        _assert_same(a, b)
    values = grain[0]["image"][..., 0, 0, 0].reshape(-1)
    assert len(set(values.tolist())) == 5  # 6 examples, the bad one filled with a good one


def test_unknown_loader_names_the_field():
    with pytest.raises(ValueError, match="data.loader='tfdata'"):
        make_source(_cfg("tfdata"), RES, seed=0)
