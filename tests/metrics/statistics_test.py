"""FID / KID / IS / precision-recall on features: exact values and bad inputs."""
import numpy as np
import pytest
import scipy.linalg

from gan_zoo import metrics
from gan_zoo.metrics import FeatureStats, frechet_distance


def _gaussian(rng, n, d, shift=0.0):
    a = rng.standard_normal((d, d)) / np.sqrt(d)
    return rng.standard_normal((n, d)) @ a + shift


def test_fid_of_a_set_with_itself_is_zero():
    x = _gaussian(np.random.default_rng(0), 500, 16)
    assert abs(metrics.fid_from_features(x, x)) < 1e-8


def test_frechet_distance_matches_independent_scipy():
    rng = np.random.default_rng(1)
    a, b = _gaussian(rng, 400, 12), _gaussian(rng, 300, 12, shift=0.3)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Independent: Tr sqrt(S1 S2) = Tr sqrt(S1^1/2 S2 S1^1/2) (symmetric, via eigh).
    r1 = scipy.linalg.sqrtm(s1).real
    ev = np.linalg.eigvalsh(r1 @ s2 @ r1)
    want = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(ev))
    assert metrics.fid_from_features(a, b) == pytest.approx(want, rel=1e-9)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-9)
    assert frechet_distance(mu1, s1, mu2, s2, method="eigh") == pytest.approx(want, rel=1e-9)


def test_feature_stats_stream_equals_batch(tmp_path):
    x = _gaussian(np.random.default_rng(2), 101, 5)
    s = FeatureStats(5)
    for i in range(0, 101, 17):
        s.update(x[i:i + 17])
    mu, cov = s.mean_cov()
    np.testing.assert_allclose(mu, x.mean(0), atol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False), atol=1e-12)
    s.save(tmp_path / "s.npz")
    np.testing.assert_array_equal(FeatureStats.load(tmp_path / "s.npz").outer, s.outer)


def test_kid_unbiased_on_known_distributions():
    # d = 1: k(x, y) = (xy + 1)^3, so MMD^2 = sum_j c_j (E x^j - E y^j)^2, c = (3, 3, 1) for j=1..3.
    rng = np.random.default_rng(3)
    mu = 0.5
    x, y = rng.standard_normal((4000, 1)), rng.standard_normal((4000, 1)) + mu
    want = 3 * mu ** 2 + 3 * mu ** 4 + (mu ** 3 + 3 * mu) ** 2
    got, _ = metrics.kid(x, y, num_subsets=50, max_subset_size=1000)
    assert got == pytest.approx(want, rel=0.08)
    # Unbiased: the same distribution gives ~0 (a biased V-statistic would be clearly > 0).
    same, _ = metrics.kid(x, rng.standard_normal((4000, 1)), num_subsets=50)
    assert abs(same) < 0.02


def test_inception_score_uniform_and_one_hot():
    assert metrics.inception_score(np.zeros((100, 1008)))[0] == pytest.approx(1.0, abs=1e-12)
    labels = np.arange(1008 * 10) % 1008
    logits = np.eye(1008)[labels] * 100.0
    mean, std = metrics.inception_score(logits, splits=10, shuffle=False)
    assert mean == pytest.approx(1008.0, rel=1e-6) and std < 1e-6 * 1008


def test_precision_recall():
    rng = np.random.default_rng(4)
    real = rng.standard_normal((300, 8))
    p, r = metrics.precision_recall(real, real.copy())
    assert p == 1.0 and r == 1.0
    p, r = metrics.precision_recall(real, real[:100] * 0.05)  # collapsed fakes: precise, low recall
    assert p > 0.9 and r < 0.5
    p, r = metrics.precision_recall(real, real + 100.0)
    assert p == 0.0 and r == 0.0


@pytest.mark.parametrize("call, match", [
    (lambda: metrics.fid_from_features(np.zeros((1, 4)), np.zeros((5, 4))), "at least 2"),
    (lambda: metrics.fid_from_features(np.zeros((5, 4)), np.zeros((5, 3))), "dimension"),
    (lambda: metrics.fid_from_features(np.full((5, 4), np.nan), np.zeros((5, 4))), "NaN"),
    (lambda: metrics.kid(np.zeros((1, 4)), np.zeros((5, 4))), "at least 2"),
    (lambda: metrics.inception_score(np.zeros((5, 10)), splits=10), "at least 10"),
    (lambda: metrics.inception_score(np.zeros((20, 10), np.int32)), "float"),
    (lambda: metrics.precision_recall(np.zeros((3, 4)), np.zeros((9, 4))), "at least 4"),
    (lambda: frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2)), "shapes"),
])
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
