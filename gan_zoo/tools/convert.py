"""An official network file -> a gan_zoo workdir (sample, evaluate, fine-tune) or plain .npz.

    python -m gan_zoo.tools.convert stylegan2-ffhq-1024x1024.pkl --out=/tmp/ffhq
    python -m gan_zoo.tools.convert network-snapshot.pkl --out=/tmp/run \
        --config=configs/stylegan2.py:photos        # training settings of another preset
    python -m gan_zoo.tools.convert weights/BigGAN_run --out=/tmp/bg --biggan_kwargs=run.json
    python -m gan_zoo.tools.convert network-snapshot.pkl --out=/tmp/sd --to=npz

The file is read by gan_zoo.convert.official: nothing in it is executed. `--to=workdir` (default)
writes, in the layout of a training workdir:
- `checkpoints/0/`: the Orbax GANState at step 0: params g / d = the file's G and D, ema_params =
  its G_ema, the model collections (noise maps, w_avg, BN / SN state) of G_ema and D, and a
  freshly initialised optimizer state and recipe scalars;
- `networks.json`: the official constructor kwargs (gan_zoo.convert.network_spec), so the config
  rebuilds exactly the file's G and D (config.networks);
- `config.py` (and `config.json`): the config, i.e. `--config` (default: the family's full-size
  preset) with the file's resolution, classes and networks. Use it as

    python experiments/main.py --config=/tmp/ffhq/config.py --workdir=/tmp/ffhq --mode=sample
    python experiments/main.py --config=/tmp/ffhq/config.py --workdir=/tmp/ffhq --mode=eval
    python experiments/main.py --config=/tmp/ffhq/config.py --workdir=/tmp/ft \
        --config.init_from=/tmp/ffhq --config.data.name=...    # fine-tune: G, D, G_ema of the file

`--to=npz` writes each network's torch-named state dict as it is stored in the file (G.npz,
G_ema.npz, D.npz) with its constructor kwargs beside it (G.json, ...: {"class_name",
"init_kwargs"}, kwargs as in networks.json), the inputs of
`gan_zoo.tools.generate --network=G_ema.npz`.
"""

import argparse
import json
import os
import pathlib
import sys

import numpy as np

from gan_zoo.config_file import load_config_file
from gan_zoo.tools import generate

REPO_CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "configs"
DEFAULT_CONFIGS = {"stylegan2": "stylegan2.py:ffhq1024", "stylegan3": "stylegan3.py:ffhq1024_t",
                   "biggan": "biggan.py:imagenet128", "biggan_deep": "biggan_deep.py:imagenet128"}
RECIPES = {"stylegan2": "stylegan2", "stylegan3": "stylegan3", "biggan": "biggan",
           "biggan_deep": "biggan"}


# ----------------------------------------------------------------------------------------------
# Config.

def config_overrides(nets, networks_json: str) -> dict:
    """Dotted config keys -> values that make a family config describe the file's networks."""
    out = {"networks": os.path.abspath(networks_json),
           "model.resolution": int(nets.extra["resolution"])}
    if nets.family in ("stylegan2", "stylegan3"):
        out["model.n_classes"] = int(nets.G.c_dim)
    else:  # the BigGAN recipe draws z and labels from these
        out.update({"model.n_classes": int(nets.G.n_classes), "model.dim_z": int(nets.G.dim_z)})
    return out


def derived_config(base: str, overrides: dict, arg=None):
    """The config `base` ('path.py:preset'; `arg` replaces the preset) with `overrides` set."""
    path, _, preset = base.partition(":")
    config = load_config_file(f"{path}:{arg if arg is not None else preset}")
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = config
        for name in parents:
            node = node[name]
        if leaf not in node:
            raise ValueError(f"--config={base}: has no field {key!r} (needed for the converted "
                             "networks)")
        node[leaf] = value
    return config


_CONFIG_PY = '''"""Config of the gan_zoo workdir converted from {source} by gan_zoo.tools.convert.

    python experiments/main.py --config={here} --workdir={workdir} --mode=sample
    python experiments/main.py --config={here} --workdir=NEW_DIR --config.init_from={workdir}

The argument after a colon (--config={here}:PRESET) picks another preset of {base_file}.
"""

from gan_zoo.tools.convert import derived_config

BASE = {base!r}
OVERRIDES = {overrides!r}


def get_config(arg=None):
    return derived_config(BASE, OVERRIDES, arg)
'''


def write_config_py(out: str, source: str, base: str, overrides: dict) -> str:
    path = os.path.join(out, "config.py")
    with open(path, "w") as f:
        f.write(_CONFIG_PY.format(source=source, here=path, workdir=os.path.abspath(out),
                                  base=base, base_file=base.partition(":")[0],
                                  overrides=overrides))
    return path


def base_config(family: str, text) -> str:
    """--config as an absolute 'path.py:preset' (default: DEFAULT_CONFIGS[family])."""
    if not text:
        text = str(REPO_CONFIGS / DEFAULT_CONFIGS[family])
        if not REPO_CONFIGS.is_dir():
            raise ValueError(f"--config: no configs/ folder at {REPO_CONFIGS}; pass "
                             "--config=PATH/configs/<family>.py:preset")
    path, sep, preset = text.partition(":")
    return os.path.abspath(path) + sep + preset


# ----------------------------------------------------------------------------------------------
# Workdir.

def _check_tree(name: str, got, want) -> None:
    """ValueError naming the first path where the file's tree differs from the config's."""
    import jax  # noqa: PLC0415

    g = dict(jax.tree_util.tree_flatten_with_path(got)[0])
    w = dict(jax.tree_util.tree_flatten_with_path(want)[0])
    for path in sorted(set(g) | set(w), key=str):
        where = f"{name}{jax.tree_util.keystr(path)}"
        if path not in g or path not in w:
            side = "the file" if path not in g else "the config's networks"
            raise ValueError(f"{where}: missing in {side}")
        if tuple(np.shape(g[path])) != tuple(w[path].shape):
            raise ValueError(f"{where}: shape {list(np.shape(g[path]))} in the file, "
                             f"{list(w[path].shape)} in the config's networks")


def fill_state(state, nets):
    """The fresh GANState `state` with the file's G, G_ema, D and their collections."""
    import jax  # noqa: PLC0415

    g = nets.g_variables if nets.g_variables is not None else nets.g_ema_variables
    g_ema = nets.g_ema_variables if nets.g_ema_variables is not None else g
    cols = {"g": {k: v for k, v in g_ema.items() if k != "params"},
            "d": {k: v for k, v in nets.d_variables.items() if k != "params"}}
    new = {"params": {"g": g["params"], "d": nets.d_variables["params"]},
           "ema_params": g_ema["params"], "collections": cols}
    for name, tree in new.items():
        _check_tree(name, tree, getattr(state, name))
    placed = {name: jax.tree.map(lambda x, a: jax.device_put(np.asarray(x, a.dtype), a.sharding),
                                 tree, getattr(state, name)) for name, tree in new.items()}
    return state.replace(**placed)


def write_workdir(nets, out: str, config_text=None) -> tuple:
    """Writes checkpoints/0, networks.json, config.py / .json; returns (config, config.py)."""
    from gan_zoo.convert import network_spec  # noqa: PLC0415
    from gan_zoo.train import checkpoint, sharding  # noqa: PLC0415
    from gan_zoo.train.loop import build_state  # noqa: PLC0415

    if nets.D is None or nets.d_variables is None:
        raise ValueError(f"{nets.path}: has no discriminator; a workdir needs G and D "
                         "(--to=npz writes the generator alone)")
    os.makedirs(out, exist_ok=True)
    spec_path = os.path.join(out, "networks.json")
    network_spec.save(network_spec.from_official(nets), spec_path)
    base = base_config(nets.family, config_text)
    recipe = load_config_file(base).recipe
    if recipe != RECIPES[nets.family]:
        raise ValueError(f"--config={base}: recipe {recipe!r} does not train a "
                         f"{nets.family} network; use a configs/{RECIPES[nets.family]}*.py")
    overrides = config_overrides(nets, spec_path)
    config = derived_config(base, overrides)
    ckpt = checkpoint.Checkpointer(out, config.checkpoint.keep, False)
    if ckpt.latest_step() is not None:
        raise ValueError(f"--out={out}: already holds a checkpoint (step {ckpt.latest_step()}); "
                         "use an empty folder")
    _, _, _, init = build_state(config, sharding.make_mesh(config.mesh))
    state = fill_state(init(), nets)
    ckpt.save(0, state, json.loads(config.to_json_best_effort()))
    ckpt.wait()
    ckpt.close()
    with open(os.path.join(out, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2))
    return config, write_config_py(out, nets.path, base, overrides)


# ----------------------------------------------------------------------------------------------
# Plain state dicts.

_CLASS_NAMES = {"stylegan2": "training.networks.{}", "stylegan3": "training.networks_stylegan3.{}",
                "stylegan_xl": "training.networks_stylegan3_resetting.{}",
                "biggan": "BigGAN.{}", "biggan_deep": "BigGANdeep.{}"}


def raw_state_dicts(nets) -> dict:
    """{'G' | 'G_ema' | 'D': {torch name: array}} exactly as stored in the file."""
    from gan_zoo.convert import official  # noqa: PLC0415

    if nets.family in ("stylegan2", "stylegan3", "stylegan_xl"):
        data = official.read_pickle(nets.path)
        return {k: dict(data[k].state_dict) for k in ("G", "G_ema", "D")
                if data.get(k) is not None}
    files = nets.extra.get("files", {})
    return {k: dict(official.read_torch_checkpoint(files[k])) for k in ("G", "G_ema", "D")
            if files.get(k)}


def write_npz(nets, out: str) -> list:
    """<out>/{G,G_ema,D}.npz (torch names) + .json kwargs; returns the written paths."""
    from gan_zoo.convert import network_spec  # noqa: PLC0415

    os.makedirs(out, exist_ok=True)
    spec, paths = network_spec.from_official(nets), []
    for name, state in raw_state_dicts(nets).items():
        role = "D" if name == "D" else "G"
        cls = _CLASS_NAMES[nets.family].format(
            "Discriminator" if role == "D" else "Generator")
        paths.append(os.path.join(out, f"{name}.npz"))
        np.savez(paths[-1], **{k: np.asarray(v) for k, v in state.items()})
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump({"class_name": cls, "init_kwargs": spec[role]}, f, indent=2)
    return paths


# ----------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="NVlabs .pkl, BigGAN-PyTorch .pth / .pt or checkpoint folder")
    parser.add_argument("--out", required=True, help="output folder (workdir or .npz folder)")
    parser.add_argument("--to", default="workdir", choices=("workdir", "npz"))
    parser.add_argument("--config", help="workdir: base config 'configs/<family>.py:preset' "
                        "(default: the family's full-size preset); the file sets the networks")
    parser.add_argument("--biggan_kwargs", help="BigGAN-PyTorch run config (JSON text or .json) "
                        "when no state_dict.pth lies beside the .pth")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from gan_zoo.convert import official  # noqa: PLC0415

        nets = official.load_official(
            args.file, biggan_kwargs=generate.json_arg("--biggan_kwargs", args.biggan_kwargs))
        if args.to == "npz":
            paths = write_npz(nets, args.out)
            print(f"wrote {len(paths)} state dicts to {args.out}")
            return 0
        _, config_py = write_workdir(nets, args.out, args.config)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote a {nets.family} workdir to {args.out} (step 0); sample with\n  python "
          f"experiments/main.py --config={config_py} --workdir={args.out} --mode=sample")
    return 0


if __name__ == "__main__":
    sys.exit(main())
