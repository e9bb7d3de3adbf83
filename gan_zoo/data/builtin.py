"""The two built-in offline datasets, kept in memory and indexed by step (exactly resumable).

`digits`: scikit-learn's 1,797 handwritten digits (8x8, 10 classes), upsampled to 32x32 then
resized to the target resolution. `photos`: random square crops of scikit-image's bundled
photographs, unconditional (label 0), resized with an area (box) filter.
"""

import numpy as np

# scikit-image photographs that ship inside the package (no download needed).
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field",
          "immunohistochemistry", "coins", "moon", "page", "horse", "text")


def resize_box(image: np.ndarray, size: int, resample: str = "box") -> np.ndarray:
    """uint8 [h, w, 3] -> uint8 [size, size, 3] with PIL (box = area filter when shrinking)."""
    from PIL import Image  # noqa: PLC0415

    filt = {"box": Image.Resampling.BOX, "bicubic": Image.Resampling.BICUBIC}[resample]
    return np.asarray(Image.fromarray(image).resize((size, size), filt))


def load_digits(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as uint8 [N, r, r, 3] (white on black) and int32 labels [N]."""
    from sklearn.datasets import load_digits as sk_digits  # noqa: PLC0415

    d = sk_digits()
    gray = np.clip(d.images * (255.0 / 16.0), 0, 255).astype(np.uint8)  # [N, 8, 8], 0..16
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    up = np.stack([resize_box(im, 32, "bicubic") for im in rgb])  # the 32x32 dataset
    if resolution != 32:
        up = np.stack([resize_box(im, resolution, "box" if resolution < 32 else "bicubic")
                       for im in up])
    return up, d.target.astype(np.int32)


def load_photos() -> list[np.ndarray]:
    """The bundled photographs as uint8 [h, w, 3] arrays (grey ones replicated to RGB)."""
    import skimage.data  # noqa: PLC0415

    out = []
    for name in PHOTOS:
        try:
            im = np.asarray(getattr(skimage.data, name)())
        except Exception:  # noqa: BLE001 (a photo that needs a download is simply left out)
            continue
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=-1)
        out.append(im[..., :3].astype(np.uint8))
    if not out:
        raise FileNotFoundError("data.name='photos': no scikit-image photographs could be loaded; "
                                "reinstall scikit-image (`pip install scikit-image`)")
    return out


def photo_crops(photos, rng: np.random.Generator, n: int, resolution: int, keep) -> np.ndarray:
    """n random square crops (side uniform in [min(r, short edge), short edge]) resized to r.

    All random numbers are drawn for the n samples (so every host draws the same stream); only the
    samples where `keep` is True are cropped. Returns uint8 [sum(keep), r, r, 3].
    """
    which = rng.integers(0, len(photos), n)
    u = rng.random((n, 3))
    out = []
    for i in np.flatnonzero(keep):
        im = photos[which[i]]
        short = min(im.shape[:2])
        side = int(round(min(resolution, short) + u[i, 0] * (short - min(resolution, short))))
        y0 = int(u[i, 1] * (im.shape[0] - side))
        x0 = int(u[i, 2] * (im.shape[1] - side))
        out.append(resize_box(np.ascontiguousarray(im[y0:y0 + side, x0:x0 + side]), resolution))
    return np.stack(out)
