"""benchmarks/digits_quality.py: the pooling maps the 32x32 training digits back onto sklearn's
8x8 digits; real digits score near the held-out ceiling on agreement, precision, recall and FD;
one image repeated per class scores recall near 0 (while agreement stays high); noise scores
precision near 0."""

import numpy as np
import pytest

from tests.benchmarks import load_script


@pytest.fixture(scope="module")
def dq():
    return load_script("digits_quality")


@pytest.fixture(scope="module")
def judged(dq):
    """(judge, real R/H sets, the classifier-half images and labels: real digits R, H never saw)."""
    from gan_zoo.data import builtin

    judge, real = dq.fit_judge(32)
    images, labels = builtin.load_digits(32)
    train, ref, held = dq.split_indices(len(labels))
    assert not set(train) & set(ref) and not set(ref) & set(held) and not set(train) & set(held)
    return judge, real, images[train], labels[train]


def test_pooled_training_digits_match_sklearn(dq):
    from sklearn.datasets import load_digits

    from gan_zoo.data import builtin

    images, _ = builtin.load_digits(32)
    pooled = dq.to_digit_space(images)  # bicubic up to 32, box down to 8: close to the original
    assert np.abs(pooled - load_digits().data).mean() < 1.0  # of a 0..16 range


def test_real_digits_score_near_the_held_out_ceiling(dq, judged, tmp_path, capsys):
    _, _, images, labels = judged
    path = tmp_path / "s.npz"
    np.savez(path, images=images, labels=labels)
    res = dq.main([str(path)])
    s, r = res["samples"]["all"], res["real"]["all"]
    assert r["agree"] > 0.93 and r["precision"] > 0.8 and r["recall"] > 0.8  # a sane ceiling
    assert s["agree"] >= 0.95 * r["agree"] and s["precision"] > 0.85 * r["precision"]
    assert s["recall"] > 0.85 * r["recall"] and s["fd"] < 1.5 * r["fd"]
    assert min(res["samples"][c]["recall"] for c in range(10)) > 0.6
    out = capsys.readouterr().out
    assert "recall" in out and "\n    9 " in out and "\n  all " in out


def test_one_image_repeated_per_class_scores_recall_near_zero(dq, judged):
    judge, real, images, labels = judged
    first = np.array([np.flatnonzero(labels == c)[0] for c in range(10)])
    pick = np.repeat(first, 100)  # 100 copies of one real digit per class
    res = dq.score(judge, real, images[pick], labels[pick])
    s, r = res["samples"]["all"], res["real"]["all"]
    assert s["agree"] > 0.9  # the right digits: label agreement alone cannot see the collapse
    assert s["recall"] < 0.03 and max(res["samples"][c]["recall"] for c in range(10)) < 0.05
    assert s["fd"] > 5 * r["fd"]


def test_noise_scores_precision_near_zero(dq, judged):
    judge, real, _, _ = judged
    noise = np.random.default_rng(0).integers(0, 256, (500, 32, 32, 3), np.uint8)
    res = dq.score(judge, real, noise, np.arange(500) % 10)
    s, r = res["samples"]["all"], res["real"]["all"]
    assert s["precision"] < 0.03 and s["fd"] > 10 * r["fd"]


def test_bad_inputs_name_what_was_expected(dq, tmp_path):
    with pytest.raises(ValueError, match="multiple of 8"):
        dq.to_digit_space(np.zeros((2, 30, 30, 3), np.uint8))
    np.savez(tmp_path / "x.npz", images=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="missing \\['labels'\\]"):
        dq.load_samples(str(tmp_path / "x.npz"))
    np.savez(tmp_path / "y.npz", images=np.zeros((2, 32, 32, 3), np.uint8), labels=[0, 12])
    with pytest.raises(ValueError, match="labels must be digits"):
        dq.load_samples(str(tmp_path / "y.npz"))
    np.savez(tmp_path / "z.npz", images=np.zeros((2, 32, 32, 3), np.uint8), labels=[0, 1])
    with pytest.raises(ValueError, match="missing \\[2, 3, 4"):
        dq.load_samples(str(tmp_path / "z.npz"))


def test_judge_spread_scores_each_judge_against_its_own_ceiling(dq, judged, capsys):
    _, _, images, labels = judged
    rows = dq.judge_spread(images[:600], labels[:600], 2)  # the main judge and (64, seed 1)
    assert [(h, s) for h, s, _ in rows] == [dq.JUDGES[0], dq.JUDGES[1]]
    fds = [res["real"]["all"]["fd"] for _, _, res in rows]
    assert fds[0] != fds[1]  # another initialisation: another feature space
    for _, _, res in rows:  # real digits the judges never saw: at their ceilings
        q = dq.ratios(res)
        assert q["agree"] >= 0.95 and q["recall"] > 0.8 and q["fd"] < 1.6
    assert "meets the targets under all 2 judges" in capsys.readouterr().out
    with pytest.raises(ValueError, match="--judges"):
        dq.judge_spread(images, labels, len(dq.JUDGES) + 1)
