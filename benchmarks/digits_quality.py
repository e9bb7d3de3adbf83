"""Class-conditional quality of a `digits` preset: label agreement, precision, recall and FD.

    python experiments/main.py --config=configs/biggan_deep.py:digits --workdir=/tmp/dd
    python experiments/main.py --config=configs/biggan_deep.py:digits --workdir=/tmp/dd \
        --mode=sample --sample_out=/tmp/dd/s.npz           # 1,000 EMA samples, labels 0-9 evenly
    python benchmarks/digits_quality.py /tmp/dd/s.npz

The judge is a one-hidden-layer MLP (64 ReLU units) fit on half of scikit-learn's 1,797 8x8
digits (pixel values 0..16, a fixed split). The other half is split into two disjoint real sets:
the reference R and the held-out H. Samples are mapped to the same space (grey = channel mean,
box-averaged to 8x8, 0..255 -> 0..16). Printed, overall and per class, each beside the same figure
for H vs R (the real ceiling, or floor for FD):
- label agreement: the fraction of samples the MLP predicts as their conditioning label;
- improved precision and recall (k = 3, gan_zoo.metrics.precision_recall) and the Frechet
  distance (gan_zoo.metrics.frechet) of the MLP's hidden-layer features against R's.
For P&R and FD, whose values depend on the set sizes, the samples are subsampled (fixed seed) to
H's count of each class. R and H are taken from the built-in `digits` dataset the GAN trained on
(bicubic-upsampled to the sample size) and pooled the same way as the samples.

The figures depend on the judge (its width and initialisation): `--judges N` also scores the
samples under the first N of JUDGES (other hidden widths and seeds, same split) and prints each
one's overall figures as ratios to its own real ceiling, with the worst of them: a preset that
meets the targets under every judge does not owe it to one feature space.
"""

import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout

import numpy as np  # noqa: E402

SPLIT_SEED = 0  # fixes the classifier / R / H split of sklearn's digits
SUBSET_SEED = 0  # which samples are matched to H's class counts
HIDDEN = 64  # MLP hidden units: the feature space of P&R and FD
K = 3  # improved P&R neighbourhood (StyleGAN2/3 protocol)
# (hidden units, MLP seed) of the judges `--judges N` adds; the first is the main judge.
JUDGES = ((HIDDEN, SPLIT_SEED), (HIDDEN, 1), (HIDDEN, 2), (100, 0), (100, 1), (100, 2),
          (32, 0), (32, 1), (32, 2))
TARGETS = {"agree": 0.95, "recall": 0.5, "fd": 3.0}  # issue #16: ratios to the real figure


def to_digit_space(images_u8: np.ndarray) -> np.ndarray:
    """uint8 [N, R, R, C] (R a multiple of 8) -> float [N, 64] in sklearn digits' 0..16 range."""
    if images_u8.ndim != 4 or images_u8.shape[1] != images_u8.shape[2] or \
            images_u8.shape[1] % 8:
        raise ValueError(f"images: expected [N, R, R, C] with R a multiple of 8, got "
                         f"{images_u8.shape}")
    n, r = images_u8.shape[:2]
    f = r // 8
    grey = images_u8.astype(np.float64).mean(axis=-1)  # [N, R, R]
    pooled = grey.reshape(n, 8, f, 8, f).mean(axis=(2, 4))  # [N, 8, 8]
    return (pooled * 16.0 / 255.0).reshape(n, 64)


def split_indices(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint (classifier, R, H) index sets of sizes n/2, n/4, n/4 from a fixed permutation."""
    idx = np.random.default_rng(SPLIT_SEED).permutation(n)
    half, three_q = n // 2, (3 * n) // 4
    return idx[:half], idx[half:three_q], idx[three_q:]


class Judge:
    """The MLP digit classifier and its hidden-layer feature map (inputs in 0..16)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, hidden: int = HIDDEN, seed: int = SPLIT_SEED):
        from sklearn.exceptions import ConvergenceWarning  # noqa: PLC0415
        from sklearn.neural_network import MLPClassifier  # noqa: PLC0415
        from threadpoolctl import threadpool_limits  # noqa: PLC0415

        # Adam (98% on the other half). L-BFGS fits as well and faster, but its hidden layer maps
        # uniform noise inside the real digits' k-NN balls (noise precision 0.83-0.98 vs 0.00).
        self.mlp = MLPClassifier((hidden,), alpha=1e-3, max_iter=1000, random_state=seed)
        with warnings.catch_warnings(), threadpool_limits(1):  # 64-wide: threads only contend
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.mlp.fit(x / 16.0, y)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.mlp.predict(x / 16.0)

    def features(self, x: np.ndarray) -> np.ndarray:
        """Hidden-layer activations relu(x W0 + b0) [N, hidden]."""
        return np.maximum(x / 16.0 @ self.mlp.coefs_[0] + self.mlp.intercepts_[0], 0.0)


def fit_judge(resolution: int, hidden: int = HIDDEN, seed: int = SPLIT_SEED):
    """(Judge, {"R": (images, labels), "H": (images, labels)}) for uint8 [M, R, R, 3] images."""
    from sklearn.datasets import load_digits  # noqa: PLC0415

    from gan_zoo.data import builtin  # noqa: PLC0415

    d = load_digits()
    train, ref, held = split_indices(len(d.target))
    judge = Judge(d.data[train], d.target[train], hidden, seed)
    images, labels = builtin.load_digits(resolution)  # the GAN's training set, sklearn's order
    return judge, {"R": (images[ref], labels[ref]), "H": (images[held], labels[held])}


def match_counts(labels: np.ndarray, target: np.ndarray, seed: int = SUBSET_SEED) -> np.ndarray:
    """Indices into `labels` with as many of each class as `target` has (fewer if short)."""
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:np.sum(target == c)]
             for c in np.unique(target)]
    return np.sort(np.concatenate(picks))


def set_scores(ref_f: np.ndarray, f: np.ndarray, agree: float) -> dict:
    """{agree, precision, recall, fd} of features f against the reference features ref_f."""
    from gan_zoo.metrics.frechet import FeatureStats, fid_from_stats  # noqa: PLC0415
    from gan_zoo.metrics.precision_recall import precision_recall  # noqa: PLC0415

    p, r = precision_recall(ref_f, f, k=K)
    stats = [FeatureStats(f.shape[1]).update(a) for a in (ref_f, f)]
    return dict(agree=agree, precision=p, recall=r, fd=fid_from_stats(*stats, method="eigh"))


def score(judge: Judge, real: dict, images: np.ndarray, labels: np.ndarray) -> dict:
    """{"samples"|"real": {"all"|class: set_scores}}; "real" is H scored against R.

    Per class, R, H and the samples are cut to one count m (the smallest class count in R and H)
    so that every class is scored at the same set size (and one jit shape).
    """
    x = {"samples": to_digit_space(images), "real": to_digit_space(real["H"][0])}
    y = {"samples": labels, "real": real["H"][1]}
    pick = match_counts(labels, real["H"][1])  # samples subsampled to H's class counts
    ref_x, ref_y = to_digit_space(real["R"][0]), real["R"][1]
    ref_f = judge.features(ref_x)
    m = min(np.min(np.bincount(ref_y, minlength=10)), np.min(np.bincount(y["real"], minlength=10)))
    out = {}
    for name in ("samples", "real"):
        hit = judge.predict(x[name]) == y[name]
        sub = pick if name == "samples" else np.arange(len(y[name]))
        f, ys = judge.features(x[name][sub]), y[name][sub]
        res = {"all": set_scores(ref_f, f, float(np.mean(hit)))}
        for c in range(10):
            res[c] = set_scores(ref_f[ref_y == c][:m], f[ys == c][:m],
                                float(np.mean(hit[y[name] == c])))
        out[name] = res
    return out


def load_samples(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images [N, R, R, C], int labels [N]) from a --mode=sample .npz."""
    data = np.load(path)
    missing = {"images", "labels"} - set(data.files)
    if missing:
        raise ValueError(f"{path}: expected arrays 'images' and 'labels' (from "
                         f"experiments/main.py --mode=sample), missing {sorted(missing)}")
    images, labels = data["images"], data["labels"]
    if images.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise ValueError(f"{path}: expected uint8 images [N, R, R, C] and labels [N], got "
                         f"{images.dtype} {images.shape} and {labels.shape}")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: labels must be digits 0..9, got {labels.min()}..{labels.max()}")
    missing = sorted(set(range(10)) - set(labels.tolist()))
    if missing:
        raise ValueError(f"{path}: labels must cover every digit 0..9, missing {missing}")
    return images, labels


def _row(name, s: dict, r: dict) -> str:
    return (f"{name:>5} {s['agree']:6.1%} ({r['agree']:6.1%})  {s['precision']:5.2f} "
            f"({r['precision']:4.2f})  {s['recall']:5.2f} ({r['recall']:4.2f})  "
            f"{s['fd']:7.2f} ({r['fd']:6.2f})")


def report(res: dict) -> None:
    """Prints the table: each sample figure beside H vs R's in parentheses."""
    print(f"{'':>5} {'agreement':>15}  {'precision':>12}  {'recall':>12}  {'FD':>16}")
    for key in list(range(10)) + ["all"]:
        print(_row(key, res["samples"][key], res["real"][key]))
    q = ratios(res)
    print(f"vs real: agreement {q['agree']:.2f}x, recall {q['recall']:.2f}x, FD {q['fd']:.2f}x "
          f"(targets >= {TARGETS['agree']}, >= {TARGETS['recall']}, <= {TARGETS['fd']:g})")


def ratios(res: dict) -> dict:
    """The overall sample figures over the real ones: {agree, recall, fd} (TARGETS' terms)."""
    s, r = res["samples"]["all"], res["real"]["all"]
    return {k: s[k] / max(r[k], 1e-9) for k in TARGETS}


def judge_spread(images: np.ndarray, labels: np.ndarray, n: int) -> list:
    """[(hidden, seed, score(...))] under the first n of JUDGES, with a printed row per judge
    and the worst ratio of each figure."""
    if not 1 <= n <= len(JUDGES):
        raise ValueError(f"--judges: expected 1..{len(JUDGES)}, got {n}")
    print(f"\n{'judge':>12} {'agreement':>10} {'recall':>7} {'FD':>6}   ratios to its real figures")
    rows = []
    for hidden, seed in JUDGES[:n]:
        judge, real = fit_judge(images.shape[1], hidden, seed)
        res = score(judge, real, images, labels)
        s, q = res["samples"]["all"], ratios(res)
        print(f"{hidden:>3} seed {seed:<3} {s['agree']:10.1%} {s['recall']:7.3f} {s['fd']:6.2f}   "
              f"{q['agree']:.2f}x {q['recall']:.2f}x {q['fd']:.2f}x")
        rows.append((hidden, seed, res))
    qs = [ratios(res) for _, _, res in rows]
    worst = {"agree": min(q["agree"] for q in qs), "recall": min(q["recall"] for q in qs),
             "fd": max(q["fd"] for q in qs)}
    met = worst["agree"] >= TARGETS["agree"] and worst["recall"] >= TARGETS["recall"] and \
        worst["fd"] <= TARGETS["fd"]
    print(f"worst of {n}: agreement {worst['agree']:.2f}x, recall {worst['recall']:.2f}x, FD "
          f"{worst['fd']:.2f}x: " + (f"meets the targets under all {n} judges" if met else
                                      "misses the targets under at least one judge"))
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("samples", help=".npz from --mode=sample (images uint8, labels)")
    parser.add_argument("--judges", type=int, default=1,
                        help=f"score under the first N of {len(JUDGES)} judges (widths, seeds)")
    args = parser.parse_args(argv)
    images, labels = load_samples(args.samples)
    to_digit_space(images[:1])  # checks the shape before the classifier is fit
    judge, real = fit_judge(images.shape[1])
    res = score(judge, real, images, labels)
    print(f"{args.samples}: {len(labels)} samples; each figure beside held-out real digits' "
          f"({len(real['H'][1])} vs {len(real['R'][1])}), hidden-layer features, k = {K}")
    report(res)
    if args.judges > 1:
        res["judges"] = judge_spread(images, labels, args.judges)
    return res


if __name__ == "__main__":
    main()
