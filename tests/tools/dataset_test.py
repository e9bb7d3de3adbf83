"""Dataset tool (NVlabs layout), the data.path source, and the paper presets on prepared data.

A tiny source folder holds 12x8 RGB images (the centre crop at 8 needs no resize, so the output
pixels are a slice of the input), a grayscale one, and one bad file of each kind.
"""

import contextlib
import io
import json
import zipfile

import ml_collections
import numpy as np
import pytest
from PIL import Image

import gan_zoo.data
from configs import progan as progan_config
from configs import stylegan2 as sg2_config
from configs import stylegan3 as sg3_config
from gan_zoo import train
from gan_zoo.data import Layout, make_source
from gan_zoo.tools import dataset
from tests.train._tiny import tiny_config, tiny_networks

GOOD = [f"rgb{i}.png" for i in range(6)] + ["sub/gray.png"]  # sorted source order
BAD = {"broken.png": "undecodable", "rgba.png": "wrong mode RGBA", "small.png": "too small",
       "unlabelled.png": "no label", "word.png": "unreadable label"}
LABELS = {name: i % 3 for i, name in enumerate(GOOD)}


def _make_source(root, res: int, rng) -> dict:
    """Writes the source folder and labels.json; returns {name: the expected output uint8}."""
    (root / "sub").mkdir(parents=True)
    expected = {}
    for name in GOOD[:-1] + ["unlabelled.png", "word.png"]:
        img = rng.integers(0, 256, (res, res + res // 2, 3), dtype=np.uint8)  # H x 1.5 H
        Image.fromarray(img).save(root / name)
        expected[name] = img[:, res // 4:res // 4 + res]
    gray = rng.integers(0, 256, (res, res), dtype=np.uint8)
    Image.fromarray(gray).save(root / "sub/gray.png")
    expected["sub/gray.png"] = np.repeat(gray[..., None], 3, axis=-1)
    Image.fromarray(rng.integers(0, 256, (res, res, 4), dtype=np.uint8)).save(root / "rgba.png")
    Image.fromarray(rng.integers(0, 256, (res // 2, res, 3), dtype=np.uint8)).save(
        root / "small.png")
    (root / "broken.png").write_bytes(b"\x89PNG not really")
    (root / "notes.txt").write_text("not an image: not listed")
    pairs = [[n, y] for n, y in LABELS.items()] + [["word.png", "cat"]]
    (root / "labels.json").write_text(json.dumps({"labels": pairs}))
    return {n: expected[n] for n in GOOD}


def _tool(args) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = dataset.main([str(a) for a in args])
    return rc, out.getvalue()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """(summary stdout, zip path, expected output images in order) of a tool run at 8x8."""
    root = tmp_path_factory.mktemp("ds")
    expected = _make_source(root / "src", 8, np.random.default_rng(0))
    rc, out = _tool([f"--source={root / 'src'}", f"--dest={root / 'out.zip'}", "--resolution=8",
                     "--transform=center-crop", f"--labels={root / 'src' / 'labels.json'}"])
    assert rc == 0
    return out, root / "out.zip", expected


def _data_cfg(path, **kw):
    return ml_collections.ConfigDict(dict(dict(name="ffhq", path=str(path), flip=False,
                                               max_bad_records=0), **kw))


def test_tool_summary_lists_every_bad_file(prepared):
    out, _, _ = prepared
    lines = out.strip().splitlines()
    assert lines[0].endswith("labels: 3 classes; bad files: 5"), lines[0]
    assert lines[0].startswith(f"Wrote {len(GOOD)} images, 8x8 RGB, to ")
    listed = {line.split(": ")[1]: line.split(": ", 2)[2] for line in lines[1:]}
    assert sorted(listed) == sorted(BAD)
    for name, why in BAD.items():
        assert listed[name].startswith(why), (name, listed[name])


def test_tool_writes_the_nvlabs_layout(prepared):
    _, path, expected = prepared
    with zipfile.ZipFile(path) as z:
        names = sorted(z.namelist())
        meta = json.loads(z.read("dataset.json"))
        images = [np.asarray(Image.open(io.BytesIO(z.read(n)))) for n in names[:-1]]
    assert names == [f"00000/img{i:08d}.png" for i in range(len(GOOD))] + ["dataset.json"]
    assert meta["labels"] == [[n, LABELS[s]] for n, s in zip(names, GOOD)]
    for got, want in zip(images, expected.values()):  # centre crop without resize: exact
        np.testing.assert_array_equal(got, want)


def test_tool_rejects_bad_arguments(prepared, tmp_path):
    with pytest.raises(ValueError, match="power of two"):
        dataset.parse_resolution("12", "center-crop")
    with pytest.raises(ValueError, match="center-crop-wide"):
        dataset.parse_resolution("16x8", "center-crop")
    assert dataset.parse_resolution("16x8", "center-crop-wide") == (16, 8)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("")
    with pytest.raises(FileExistsError, match="not empty"):
        dataset.convert(str(prepared[1].parent / "src"), str(tmp_path / "out"), (8, 8))


def test_center_crop_wide_letterboxes():
    img = np.full((6, 16, 3), 200, np.uint8)  # 16 wide: rows of a 16:8 aspect = 8 > 6
    with pytest.raises(dataset.BadFile, match="too small"):
        dataset.transform_image(img, "center-crop-wide", 16, 8)
    img = np.full((12, 16, 3), 200, np.uint8)
    out = dataset.transform_image(img, "center-crop-wide", 16, 8)
    assert out.shape == (16, 16, 3)
    assert (out[:4] == 0).all() and (out[12:] == 0).all() and (out[4:12] == 200).all()


def test_source_reads_the_tool_output(prepared):
    _, path, expected = prepared
    src = make_source(_data_cfg(path), 8, seed=1)
    assert src.n_classes == 3
    n = len(GOOD)
    batch = next(src.batches(Layout(1, 1, n)))  # one epoch: each image once
    images = np.rint((batch["image"][0, 0] + 1) * 127.5).astype(np.uint8)
    want = {bytes(v): LABELS[k] for k, v in expected.items()}
    got = {bytes(img): int(y) for img, y in zip(images, batch["label"][0, 0])}
    assert got == want  # every image once, with its own label


def test_source_resume_seed_and_hosts(prepared):
    _, path, _ = prepared
    src = make_source(_data_cfg(path, flip=True), 8, seed=1)
    layout = Layout(1, 2, 2)
    full = [b for _, b in zip(range(5), src.batches(layout))]
    resumed = next(src.batches(layout, start_step=3))
    for key in ("image", "label"):
        np.testing.assert_array_equal(resumed[key], full[3][key])
    other = next(make_source(_data_cfg(path, flip=True), 8, seed=2).batches(layout))
    assert not np.array_equal(other["image"], full[0]["image"])
    seen = []  # two hosts: disjoint halves of the images, each host's epoch a permutation
    for p in range(2):
        host = next(src.batches(Layout(1, 1, 2 * len(GOOD[p::2]), p, 2)))["image"]
        seen.append({bytes(x) for x in host.reshape(-1, 8 * 8 * 3)[:len(GOOD[p::2])]})
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == len(GOOD)


@pytest.mark.parametrize("module,preset,res", [
    (sg2_config, "ffhq1024", 1024), (sg2_config, "ffhq1024_e", 1024),
    (sg2_config, "lsun256", 256), (sg3_config, "afhq512_t", 512),
    (sg3_config, "ffhq1024_t", 1024), (sg3_config, "ffhq1024_r", 1024),
    (progan_config, "celebahq1024", 1024)])
def test_paper_presets_without_path_give_the_commands(module, preset, res):
    config = module.get_config(preset)
    with pytest.raises(FileNotFoundError) as e:
        make_source(config.data, config.model.resolution, 0)
    msg = str(e.value)
    assert "python -m gan_zoo.tools.dataset --source=" in msg
    assert f"--resolution={res}" in msg and "--config.data.path=" in msg


def _recording(monkeypatch) -> list:
    """Patches make_source so each batches() call records (start step, its batches)."""
    calls, make = [], gan_zoo.data.make_source

    def spy(*args):
        src, batches = make(*args), None
        batches = src.batches

        def recorded(layout, start_step=0):
            calls.append((start_step, []))
            for b in batches(layout, start_step):
                calls[-1][1].append(b)
                yield b
        src.batches = recorded
        return src
    monkeypatch.setattr(gan_zoo.data, "make_source", spy)
    return calls


def test_trains_from_prepared_data_and_resumes_its_batches(tmp_path, monkeypatch):
    """The tiny trainer config (BigGAN recipe, 16x16, tests/train/_tiny) on a labelled tool
    output: 2 steps, stop, resume to 4; the two runs read the uninterrupted stream's batches
    0-3 (the trainer's own bit-identical resume is tests/train/resume_test.py)."""
    rng = np.random.default_rng(3)
    (tmp_path / "src").mkdir()
    pairs = []
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (20, 16, 3), dtype=np.uint8)).save(
            tmp_path / "src" / f"{i}.jpg")
        pairs.append([f"{i}.jpg", i % 4])
    (tmp_path / "src" / "dataset.json").write_text(json.dumps({"labels": pairs}))
    rc, _ = _tool([f"--source={tmp_path / 'src'}", f"--dest={tmp_path / 'ds'}",
                   "--resolution=16", "--transform=center-crop"])
    assert rc == 0
    config = tiny_config(**{"data.path": str(tmp_path / "ds"), "data.flip": True,
                            "train.num_steps": 4, "checkpoint.every_steps": 2})
    calls = _recording(monkeypatch)
    state, _ = train.run(config, str(tmp_path / "run"), tiny_networks(config), stop_after=2)
    assert int(state.step) == 2
    state, _ = train.run(config, str(tmp_path / "run"), tiny_networks(config))
    assert int(state.step) == 4
    assert [start for start, _ in calls] == [0, 2]
    used = calls[0][1][:2] + calls[1][1][:2]  # the prefetcher may read ahead: first 2 of each
    assert {int(y) for b in used for y in b["label"].reshape(-1)} <= {0, 1, 2, 3}
    stream = make_source(config.data, 16, config.seed).batches(_layout_of(used[0]))
    for got, want in zip(used, stream):
        np.testing.assert_array_equal(got["image"], want["image"])
        np.testing.assert_array_equal(got["label"], want["label"])


def _layout_of(batch) -> Layout:
    s, a, b = batch["label"].shape
    return Layout(s, a, b)


def test_run_stops_with_the_commands(tmp_path):
    """train.run checks the data before it builds the (here 512x512) networks."""
    config = sg3_config.get_config("afhq512_t")
    with pytest.raises(FileNotFoundError, match="python -m gan_zoo.tools.dataset"):
        train.run(config, str(tmp_path / "run"))
    config.data.path = str(tmp_path / "missing.zip")
    with pytest.raises(FileNotFoundError, match="no such zip or folder"):
        train.run(config, str(tmp_path / "run"))
