"""Issue #17 item 7: singular-value monitoring chosen by pattern, the "device" BN group's
denominator from the mesh, and BigGAN-deep's rgb_conv_channels reachable from the command line."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags
from flax import traverse_util
from ml_collections import config_flags

from configs import biggan as biggan_config
from configs import biggan_deep as deep_config
from gan_zoo.models import biggan
from gan_zoo.nn import batch_norm
from gan_zoo.recipes import biggan as biggan_recipe
from gan_zoo.recipes.base import data_devices
from gan_zoo.train import writers


def _abstract_params(config):
    """{'g': ..., 'd': ...} parameter shapes of the config's BigGAN (no compute)."""
    m = config.model
    G, D = biggan.make_generator(m), biggan.make_discriminator(m)
    z, y = jnp.zeros((2, m.dim_z)), jnp.zeros((2,), jnp.int32)
    x = jnp.zeros((2, m.resolution, m.resolution, 3))
    key = jax.random.PRNGKey(0)
    g = jax.eval_shape(lambda: G.init(key, z, y, train=False))["params"]
    d = jax.eval_shape(lambda: D.init(key, x, y, train=False))["params"]
    return {"g": g, "d": d}


@pytest.mark.parametrize("module", [biggan_config, deep_config], ids=["biggan", "deep"])
def test_sv_logs_cover_every_sn_kernel_of_g_and_d(module):
    config = module.get_config("imagenet128")
    params = _abstract_params(config)
    for net, tree in params.items():
        flat = traverse_util.flatten_dict(tree, sep="/")
        kernels = {k for k, v in flat.items() if v.ndim >= 2}
        chosen = writers.monitored_kernels(tree, config.log.sv_layers)
        # Every kernel but G's shared embedding (no SN), however many there are (> 32).
        assert set(chosen) == kernels - {"shared/weight"}, net
    g = writers.monitored_kernels(params["g"], config.log.sv_layers)
    assert "linear/weight" in g and "output_layer_2/weight" in g  # G's first and last layer
    assert len(g) > 32


def test_sv_pattern_selects_and_bad_pattern_names_the_field():
    tree = {"a": {"weight": np.zeros((3, 4))}, "b": {"weight": np.zeros((3, 4))},
            "a_bias": np.zeros(4)}
    assert writers.monitored_kernels(tree, "^b/") == ["b/weight"]
    assert writers.monitored_kernels(tree, ".") == ["a/weight", "b/weight"]  # 1-D skipped
    with pytest.raises(ValueError, match="config.log.sv_layers"):
        writers.monitored_kernels(tree, "(")


def test_device_bn_group_divides_by_the_mesh_data_size():
    assert jax.device_count() == 8
    config = biggan_config.get_config("digits")
    config.model.bn_reduction_group = "device"
    config.mesh = {"data": -1, "model": 4}  # 2 data shards on 8 devices
    assert data_devices(config) == 2
    G = biggan_recipe.make_recipe(config).networks["g"]
    assert G.bn_num_devices == 2
    # A batch of 8 on 2 data shards: groups of 4 (jax.device_count() would give groups of 1).
    assert batch_norm.resolve_group_size("device", 8, G.bn_num_devices) == 4
    config.model.bn_num_devices = 1  # an explicit setting wins
    assert biggan_recipe.make_recipe(config).networks["g"].bn_num_devices == 1


def test_rgb_conv_channels_from_the_command_line():
    # experiments/main.py's flag, parsed from an argv as absl would.
    argv = ["prog", "--config=configs/biggan_deep.py:imagenet128",
            "--config.model.rgb_conv_channels=128"]
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True,
                                    sys_argv=argv)
    fv(argv)
    config = fv.config
    assert config.model.rgb_conv_channels == 128
    out_conv = _abstract_params(config)["g"]["output_layer_2"]["weight"]  # [kh, kw, I, O]
    assert out_conv.shape[-1] == 128
    assert deep_config.get_config("imagenet128").model.rgb_conv_channels == 3  # the default
