"""Class-conditional quality of a `digits` preset: does a digit classifier agree with the label?

    python experiments/main.py --config=configs/biggan_deep.py:digits --workdir=/tmp/dd
    python experiments/main.py --config=configs/biggan_deep.py:digits --workdir=/tmp/dd \
        --mode=sample --sample_out=/tmp/dd/s.npz           # 1,000 EMA samples, labels 0-9 evenly
    python benchmarks/digits_quality.py /tmp/dd/s.npz

Fits a LogisticRegression on 80% of scikit-learn's 1,797 8x8 digits (pixel values 0..16), maps
each sample to the same space (grey = channel mean, box-averaged to 8x8, 0..255 -> 0..16) and
prints the fraction of samples whose predicted digit is the conditioning label, per class and
overall. The ceiling is the classifier's accuracy on the held-out 20% taken from the built-in
`digits` dataset the GAN trained on (bicubic-upsampled to the sample size), pooled the same way.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout

import numpy as np  # noqa: E402

SPLIT_SEED = 0  # fixes the 80/20 split of sklearn's digits


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


def fit_classifier(resolution: int):
    """(classifier fit on 80% of sklearn digits, held-out uint8 [M, R, R, 3] images, labels)."""
    from sklearn.datasets import load_digits  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    from gan_zoo.data import builtin  # noqa: PLC0415

    d = load_digits()
    idx = np.random.default_rng(SPLIT_SEED).permutation(len(d.target))
    cut = int(0.8 * len(idx))
    train, test = idx[:cut], idx[cut:]
    clf = LogisticRegression(max_iter=5000).fit(d.data[train], d.target[train])
    images, labels = builtin.load_digits(resolution)  # the GAN's training set, sklearn's order
    return clf, images[test], labels[test]


def per_class_accuracy(pred: np.ndarray, labels: np.ndarray) -> dict:
    """{class: fraction of the samples conditioned on it that are predicted as it}."""
    return {int(c): float(np.mean(pred[labels == c] == c)) for c in np.unique(labels)}


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
    return images, labels


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("samples", help=".npz from --mode=sample (images uint8, labels)")
    args = parser.parse_args(argv)
    images, labels = load_samples(args.samples)
    features = to_digit_space(images)  # checks the shape before the classifier is fit
    clf, real, real_labels = fit_classifier(images.shape[1])
    ceiling = np.mean(clf.predict(to_digit_space(real)) == real_labels)
    pred = clf.predict(features)
    acc = float(np.mean(pred == labels))
    print(f"{args.samples}: {len(labels)} samples")
    print("per class: " + "  ".join(f"{c}:{a:.0%}" for c, a in
                                    per_class_accuracy(pred, labels).items()))
    print(f"overall label accuracy: {acc:.1%} "
          f"(held-out real digits through the same pooling: {ceiling:.1%})")
    return acc


if __name__ == "__main__":
    main()
