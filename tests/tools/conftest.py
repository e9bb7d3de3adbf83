"""Fixtures of the tools tests."""

import types

import pytest

# configs/stylegan2.py:photos with a tiny G/D and a 2-step run (the model block is what generate
# rebuilds from --config; the train block only has to make the run short).
TINY_SG2_CONFIG = '''
from configs import stylegan2


def get_config(arg=None):
    c = stylegan2.get_config("photos" + ("," + arg if arg else ""))
    c.model.update(z_dim=8, w_dim=8, mapping_layers=1, channel_base=64, channel_max=8)
    c.train.update(num_steps=2, pl_weight=0.0, r1_gamma=0.0, lr_g=0.05, ema_kimg=0.05)
    c.checkpoint.update(every_steps=2, use_async=False)
    c.log.update(every_steps=1, image_every_steps=0, grid_size=4)
    return c
'''


@pytest.fixture(scope="session")
def tiny_sg2_run(tmp_path_factory):
    """A tiny StyleGAN2 `photos` workdir trained for two steps by the trainer, once per session
    (read-only for the tests): spec (the --config value), config, workdir and the final state."""
    from gan_zoo import train  # noqa: PLC0415
    from gan_zoo.config_file import load_config_file  # noqa: PLC0415

    root = tmp_path_factory.mktemp("tiny_sg2_run")
    (root / "tiny_sg2.py").write_text(TINY_SG2_CONFIG)
    spec = f"{root / 'tiny_sg2.py'}:steps=2"
    config, workdir = load_config_file(spec), root / "run"
    state, _ = train.run(config, str(workdir))
    return types.SimpleNamespace(spec=spec, config=config, workdir=workdir, state=state)
