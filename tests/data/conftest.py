"""Fixtures of the data tests."""

import pytest


@pytest.fixture(scope="session")
def tiny_tfds_dir(tmp_path_factory):
    """data_dir(file_format) -> a folder holding tests/data/tiny_tfds.GanZooTinyArray prepared
    in that format ("tfrecord", the TFDS default, or "array_record"), each prepared once."""
    pytest.importorskip("tensorflow_datasets")
    from tests.data import tiny_tfds  # noqa: PLC0415

    dirs = {}

    def data_dir(file_format: str) -> str:
        if file_format not in dirs:
            d = str(tmp_path_factory.mktemp(f"tiny_tfds_{file_format}"))
            tiny_tfds.GanZooTinyArray(data_dir=d, file_format=file_format).download_and_prepare()
            dirs[file_format] = d
        return dirs[file_format]

    return data_dir
