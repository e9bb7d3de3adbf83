"""make_source: the data source a config names. Imports flow one way: this module imports the
source modules (sources, archive, captions, tf_sources), none of them imports it.

Selection: `data.path` (a dataset tool output or an NVlabs zip/folder) wins; otherwise
`data.name` is a built-in ('digits', 'photos'), a caption source, 'folder' (data.data_dir), a
dataset that must be prepared with the dataset tool (PREPARE: the paper presets), or a TFDS name.
`data.loader='grain'` serves the random-access ones (data.path, built-ins) through Grain
(grain_source); the stream sources keep their own readers.
"""

import os

from gan_zoo.data import archive, grain_source, sources

# Datasets of the paper presets that exist only as downloads: where to get the images and the
# dataset tool arguments that prepare them ({r} = config.model.resolution).
PREPARE = {
    "ffhq": ("FFHQ images1024x1024 from https://github.com/NVlabs/ffhq-dataset (StyleGAN3's "
             "FFHQ-U: the unaligned images)", "--source=~/downloads/ffhq/images1024x1024 "
             "--dest=~/datasets/ffhq-{r}x{r}.zip --resolution={r}"),
    "afhq": ("AFHQv2 from https://github.com/clovaai/stargan-v2 (all three classes, as in the "
             "StyleGAN3 paper)", "--source=~/downloads/afhqv2 --dest=~/datasets/afhqv2-{r}x{r}"
             ".zip --resolution={r}"),
    "lsun_church": ("LSUN church_outdoor train from https://github.com/fyu/lsun, exported from "
                    "its lmdb to image files (`python data.py export church_outdoor_train_lmdb "
                    "--out_dir ~/downloads/lsun_church --flat` in that repository)",
                    "--source=~/downloads/lsun_church --dest=~/datasets/lsun-church-{r}x{r}.zip "
                    "--resolution={r} --transform=center-crop"),
    "celebahq": ("the CelebA-HQ 1024x1024 images (e.g. CelebA-HQ-img of https://github.com/"
                 "switchablenorms/CelebAMask-HQ; or a TFDS celeb_a_hq/1024 you prepared: "
                 "--config.data.name=celeb_a_hq/1024)", "--source=~/downloads/celebahq-1024 "
                 "--dest=~/datasets/celebahq-{r}x{r}.zip --resolution={r}"),
}


def prepare_error(name: str, resolution: int) -> FileNotFoundError:
    """The error of a PREPARE dataset without data.path: the exact commands."""
    where, args = PREPARE[name]
    dest = args.split("--dest=")[1].split()[0].format(r=resolution)
    return FileNotFoundError(
        f"data.name={name!r} is read from files you prepare: set data.path. Download {where}, "
        f"then:\n  python -m gan_zoo.tools.dataset {args.format(r=resolution)}\nand train with "
        f"--config.data.path={dest}")


def check_prepared(data_cfg, resolution: int) -> None:
    """Cheap checks a run makes before it builds any state: data.path exists, and a PREPARE
    dataset has one (else the commands that prepare it); data.loader is known."""
    grain_source.check_loader(data_cfg)
    path = data_cfg.get("path", "")
    if path and not os.path.exists(os.path.expanduser(path)):
        raise FileNotFoundError(f"data.path={path!r}: no such zip or folder (prepare one with "
                                f"python -m gan_zoo.tools.dataset --resolution={resolution})")
    if not path and data_cfg.get("name", "") in PREPARE:
        raise prepare_error(data_cfg.name, resolution)


def make_source(data_cfg, resolution: int, seed: int):
    """The source data_cfg selects (see the module docstring)."""
    check_prepared(data_cfg, resolution)
    if data_cfg.get("path", ""):  # random access: data.loader picks Grain or the native loader
        return grain_source.wrap(data_cfg, archive.archive_source(data_cfg, resolution, seed))
    name = data_cfg.name
    if name in sources.BUILTIN:
        return grain_source.wrap(data_cfg, sources.BUILTIN[name](data_cfg, resolution, seed))
    from gan_zoo.data import captions  # noqa: PLC0415 (image-caption sources, StyleGAN-T)

    if name in captions.SOURCES:
        return captions.SOURCES[name](data_cfg, resolution, seed)
    from gan_zoo.data import tf_sources  # noqa: PLC0415 (imports TensorFlow)

    if name == "folder":
        return tf_sources.folder_source(data_cfg, resolution, seed)
    return tf_sources.tfds_source(data_cfg, resolution, seed)
