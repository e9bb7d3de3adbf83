"""benchmarks/digits_quality.py: the pooling maps the 32x32 training digits back onto sklearn's
8x8 digits, and the classifier separates real digits (so a low score means the GAN)."""

import numpy as np
import pytest

from tests.benchmarks import load_script


def _module():
    return load_script("digits_quality")


def test_pooled_training_digits_match_sklearn_and_score_near_the_ceiling(tmp_path, capsys):
    from sklearn.datasets import load_digits

    from gan_zoo.data import builtin

    dq = _module()
    images, labels = builtin.load_digits(32)
    pooled = dq.to_digit_space(images)  # bicubic up to 32, box down to 8: close to the original
    assert np.abs(pooled - load_digits().data).mean() < 1.0  # of a 0..16 range
    path = tmp_path / "s.npz"
    np.savez(path, images=images[::3], labels=labels[::3])
    assert dq.main([str(path)]) > 0.9  # mostly training digits of the classifier itself
    np.savez(path, images=images[::3], labels=(labels[::3] + 1) % 10)  # every label wrong
    assert dq.main([str(path)]) < 0.1
    assert "per class: 0:" in capsys.readouterr().out


def test_bad_inputs_name_what_was_expected(tmp_path):
    dq = _module()
    with pytest.raises(ValueError, match="multiple of 8"):
        dq.to_digit_space(np.zeros((2, 30, 30, 3), np.uint8))
    np.savez(tmp_path / "x.npz", images=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="missing \\['labels'\\]"):
        dq.load_samples(str(tmp_path / "x.npz"))
    np.savez(tmp_path / "y.npz", images=np.zeros((2, 32, 32, 3), np.uint8), labels=[0, 12])
    with pytest.raises(ValueError, match="labels must be digits"):
        dq.load_samples(str(tmp_path / "y.npz"))
