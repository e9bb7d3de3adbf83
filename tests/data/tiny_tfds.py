"""Test-only TFDS builders of the data tests, in one place (TFDS registers a builder by its
class name, so each is defined once). Imported lazily: tensorflow_datasets is heavy."""

import io

import numpy as np
import tensorflow_datasets as tfds

N = 7  # record i: 8x8, value 20 i + 10, left half halved (flip-visible); label i % 3
NAME = "gan_zoo_tiny_array"
BAD_NAME = "gan_zoo_tiny_array_bad"


def indexed_image(i: int) -> np.ndarray:
    """Record i's image: brightness 20 i + 10, its left half halved (a flip is visible)."""
    a = np.full((8, 8, 3), 20 * i + 10, np.uint8)
    a[:, :4] //= 2
    return a


class GanZooTinyArray(tfds.core.GeneratorBasedBuilder):
    """N images whose brightness encodes the record index."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(8, 8, 3)),
            "label": tfds.features.ClassLabel(num_classes=3)}))

    def _split_generators(self, dl_manager):
        del dl_manager
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(N):
            yield i, {"image": indexed_image(i), "label": i % 3}


class GanZooTinyArrayBad(tfds.core.GeneratorBasedBuilder):
    """4 records of value 10, 30, 50, 70 whose record 2 is not an image."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "label": tfds.features.ClassLabel(num_classes=4)}))

    def _split_generators(self, dl_manager):
        del dl_manager
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        from PIL import Image  # noqa: PLC0415

        for i in range(4):
            png = io.BytesIO()
            Image.fromarray(np.full((8, 8, 3), 20 * i + 10, np.uint8)).save(png, format="PNG")
            yield i, {"image": io.BytesIO(b"not an image" if i == 2 else png.getvalue()),
                      "label": i}
