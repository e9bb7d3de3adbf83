"""Input pipelines: the built-in offline datasets (`digits`, `photos`), NVlabs-layout zips and
folders (`data.path`, gan_zoo.tools.dataset), TFDS by name, image folders; per-host sharding and
prefetch to devices. data.loader='grain' reads the random-access ones (data.path, built-ins)
through Grain (grain_source). TensorFlow is imported only by tf_sources, Grain only when used."""

from gan_zoo.data.pipeline import prefetch_to_devices
from gan_zoo.data.registry import check_prepared, make_source
from gan_zoo.data.sources import BUILTIN, InMemorySource, Layout

__all__ = ["BUILTIN", "InMemorySource", "Layout", "check_prepared", "make_source",
           "prefetch_to_devices"]
