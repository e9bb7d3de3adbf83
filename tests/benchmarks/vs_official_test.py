"""benchmarks/vs_official.py without torch: argument errors name the flag and path, the table
shows medians and ratios, the rounds interleave, and differing outputs stop an item untimed."""

import time
import types

import numpy as np
import pytest

from tests.benchmarks import load_script


def _module():
    return load_script("vs_official")


def _official_tree(tmp_path, marker: str):
    (tmp_path / marker).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / marker).write_text("")
    return str(tmp_path)


def test_argument_errors_name_the_flag_and_path(tmp_path):
    vs = _module()
    with pytest.raises(FileNotFoundError, match="--stylegan3-path is required .*sg2_g"):
        vs.parse_args(["--items", "sg2_g"])
    with pytest.raises(FileNotFoundError, match=f"--stylegan3-path {tmp_path}: no "
                                                "training/networks_stylegan2.py"):
        vs.parse_args(["--items", "sg3_g", "--stylegan3-path", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="--biggan-path is required"):
        vs.parse_args(["--items", "biggan_deep_train"])
    with pytest.raises(FileNotFoundError, match="no BigGANdeep.py"):
        vs.parse_args(["--items", "biggan_deep_train", "--biggan-path", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="--inception-weights .*missing.npz"):
        vs.parse_args(["--items", "fid_inception",
                       "--inception-weights", str(tmp_path / "missing.npz")])
    with pytest.raises(ValueError, match="--items: unknown \\['sg9_g'\\]"):
        vs.parse_args(["--items", "sg2_g,sg9_g"])
    with pytest.raises(ValueError, match="--rounds must be >= 1"):
        vs.parse_args(["--items", "fid_inception", "--rounds", "0"])
    # A tree with the marker file passes; only the repositories the items need are asked for.
    sg3 = _official_tree(tmp_path / "sg3", "training/networks_stylegan2.py")
    args = vs.parse_args(["--items", "sg2_g,sg3_g", "--stylegan3-path", sg3, "--batch", "2"])
    assert args.items == ["sg2_g", "sg3_g"] and vs.batch_of(args, "sg3_g") == 2
    args = vs.parse_args(["--items", "sg3_g", "--stylegan3-path", sg3])
    assert vs.batch_of(args, "sg3_g") == 4 and vs.batch_of(args, "fid_inception") == 50


def test_thread_flags():
    vs = _module()
    assert vs.xla_flags(1).split() == ["--xla_cpu_multi_thread_eigen=false",
                                       "intra_op_parallelism_threads=1"]
    assert "intra_op_parallelism_threads=4" in vs.xla_flags(4)
    assert "multi_thread_eigen=true" in vs.xla_flags(4)


def test_table_shows_medians_and_ratio():
    vs = _module()
    timed = vs.summarize("sg2_g", {"ours": [30.0, 10.0, 20.0], "theirs": [80.0, 40.0, 60.0]})
    assert (timed["ours_ms"], timed["official_ms"]) == (20.0, 60.0)
    assert timed["ratio"] == pytest.approx(1 / 3)
    failed = vs.summarize("sg3_g", None, "outputs differ")
    table = vs.format_table([timed, failed], "Device: test CPU")
    lines = table.splitlines()
    assert lines[0] == "| item | gan_zoo ms | official ms | ratio |"
    assert lines[2] == f"| {vs.ITEMS['sg2_g']} | 20.0 | 60.0 | 0.33 |"
    assert lines[3] == f"| {vs.ITEMS['sg3_g']} | - | - | not timed: outputs differ |"
    assert lines[-1] == "Device: test CPU"


def test_rounds_interleave_after_one_warm_up_each():
    vs = _module()
    calls = []
    times = vs.time_rounds(lambda: calls.append("o"), lambda: calls.append("t"), 3)
    assert calls == ["o", "t"] * 4  # warm-up pair, then 3 interleaved rounds
    assert len(times["ours"]) == len(times["theirs"]) == 3
    assert all(t >= 0 for t in times["ours"] + times["theirs"])


def test_cpu_clock_counts_work_not_waiting():
    vs = _module()

    def spin():  # ~30 ms of CPU
        t0 = time.process_time()
        while time.process_time() - t0 < 0.03:
            pass

    wall = vs.time_rounds(lambda: time.sleep(0.05), spin, 2, "wall")
    cpu = vs.time_rounds(lambda: time.sleep(0.05), spin, 2, "cpu")
    assert min(wall["ours"]) >= 45 and max(cpu["ours"]) < 10  # sleeping costs no CPU time
    assert min(cpu["theirs"]) >= 25


def test_outputs_differ_guard(capsys):
    vs = _module()
    ref = np.random.RandomState(0).randn(2, 3, 8, 8)
    assert vs.check_equal("sg2_g", "images", ref * (1 + 1e-6), ref) < 1e-5
    with pytest.raises(vs.OutputsDiffer, match="sg2_g: outputs differ \\(images: rel-L2 0.001"):
        vs.check_equal("sg2_g", "images", ref * 1.001, ref)
    with pytest.raises(vs.OutputsDiffer, match="shapes \\(2, 8, 8, 3\\) vs \\(2, 3, 8, 8\\)"):
        vs.check_equal("sg2_g", "images", ref.transpose(0, 2, 3, 1), ref)
    with pytest.raises(vs.OutputsDiffer, match="rel-L2 nan"):
        vs.check_equal("sg2_g", "images", ref * np.nan, ref)
    # run_item: a builder whose check fails yields an untimed row; nothing is called.
    timed = []

    def differ(args, item):
        vs.check_equal(item, "logits", np.ones(4), np.zeros(4) + 2)
        return vs.Bench(lambda: timed.append(1), lambda: timed.append(1))

    fake = types.SimpleNamespace(BUILDERS={"sg3_g": differ})
    row = vs.run_item(fake, types.SimpleNamespace(rounds=2), "sg3_g")
    assert row["error"] == "outputs differ" and "ratio" not in row and not timed
    assert "sg3_g: outputs differ (logits" in capsys.readouterr().out
