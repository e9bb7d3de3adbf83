"""Loading a config file by path: `configs/<name>.py[:arg]` -> its get_config(arg).

The same resolution ml_collections' config_flags performs, for tools that take a --config without
absl flags. gan_zoo never imports the `configs` package; it only executes a file it is given.
"""

import importlib.util
import os


def load_config_file(spec: str):
    """`path.py[:arg]` -> get_config(arg) of that file (arg None when absent)."""
    path, _, arg = spec.partition(":")
    if not path.endswith(".py") or not os.path.isfile(path):
        raise FileNotFoundError(f"--config={spec}: expected an existing configs/<name>.py[:preset]")
    module_spec = importlib.util.spec_from_file_location("_gan_zoo_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)
