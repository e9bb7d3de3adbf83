"""Small validation helpers that raise user-facing `ValueError`s naming what was expected."""

import logging
import numbers
import os
from typing import Sequence


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def check_rank(name: str, x, rank: int, layout: str = "") -> None:
    """Raises ValueError unless `x` has `rank` dimensions. `layout` is e.g. "[N, H, W, C]"."""
    if x.ndim != rank:
        hint = f" {layout}" if layout else ""
        raise ValueError(f"{name}: expected a rank-{rank} array{hint}, got shape {tuple(x.shape)}")


def check_shape(name: str, x, expected: Sequence) -> None:
    """Raises ValueError unless x.shape matches `expected` (None entries match anything)."""
    shape = tuple(x.shape)
    ok = len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, shape))
    if not ok:
        exp = "[" + ", ".join("?" if e is None else str(e) for e in expected) + "]"
        raise ValueError(f"{name}: expected shape {exp}, got {list(shape)}")


def int_pair(name: str, value) -> tuple[int, int]:
    """An int or an [x, y] pair of positive ints -> (x, y); official lists are [x, y]."""
    if _is_int(value):
        pair = (value, value)
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        pair = tuple(value)
    else:
        raise ValueError(f"{name}: expected an int or an [x, y] pair, got {value!r}")
    if not all(_is_int(v) and v >= 1 for v in pair):
        raise ValueError(f"{name}: expected positive integers, got {value!r}")
    return int(pair[0]), int(pair[1])


def padding4(name: str, value) -> tuple[int, int, int, int]:
    """int p, [px, py] or [x0, x1, y0, y1] -> (x0, x1, y0, y1). Negative values crop."""
    if _is_int(value):
        pad = (value,) * 4
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        pad = (value[0], value[0], value[1], value[1])
    elif isinstance(value, (list, tuple)) and len(value) == 4:
        pad = tuple(value)
    else:
        raise ValueError(f"{name}: expected an int, [px, py] or [x0, x1, y0, y1], got {value!r}")
    if not all(_is_int(v) for v in pad):
        raise ValueError(f"{name}: expected integer padding, got {value!r}")
    return tuple(int(v) for v in pad)


# Run lengths, batch sizes and intervals: (config path, smallest allowed value). Intervals that
# accept 0 mean "off"; train.num_steps=0 means "set by the recipe" (check_num_steps checks the
# run length in the end). Fields a family's config does not have are not checked.
RUN_FIELDS = (
    ("train.num_steps", 0), ("train.batch_size", 1), ("train.grad_accum", 1),
    ("train.d_steps", 1), ("train.total_kimg", 0), ("train.phase_kimg", 0),
    ("checkpoint.every_steps", 1), ("checkpoint.keep", 1), ("log.every_steps", 1),
    ("log.image_every_steps", 0), ("log.sv_every_steps", 0), ("log.grid_size", 1),
    ("eval.every", 0), ("eval.num_samples", 1), ("eval.batch_size", 1), ("data.prefetch", 1),
    ("sample.standing_stats_batch_size", 1),
)


def config_get(config, path: str, default=None):
    """config["a"]["b"] for "a.b", or `default` when a key is missing."""
    node = config
    for key in path.split("."):
        if not hasattr(node, "keys") or key not in node.keys():
            return default
        node = node[key]
    return node


def check_run_config(config) -> None:
    """Raises ValueError naming the first run length, batch size or interval that is too small
    (steps=-5, batch_size=0, ...), before any work is done. Also checks per-stage batch sizes
    (train.batch_sizes, ProGAN)."""
    fields = list(RUN_FIELDS)
    sizes = config_get(config, "train.batch_sizes")
    if sizes is not None:
        fields += [(f"train.batch_sizes.{k}", 1) for k in sizes.keys()]
    for path, low in fields:
        value = config_get(config, path)
        if value is None or isinstance(value, str):
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < low:
            what = "a positive integer" if low == 1 else "0 (off) or more"
            raise ValueError(f"config.{path}={value!r}: expected {what}")


def check_num_steps(num_steps: int, recipe_sets_it: bool) -> None:
    """Raises ValueError unless the run length (the recipe's, else train.num_steps) is >= 1."""
    if num_steps < 1:
        source = "the recipe's run length" if recipe_sets_it else "config.train.num_steps"
        raise ValueError(f"{source}={num_steps}: expected a positive number of train steps")


def check_data_classes(data_classes: int, model_classes: int, data_cfg) -> str:
    """The dataset's class count against config.model.n_classes. A conditional model needs at
    least the data's classes (ValueError naming both); an unconditional one ignores the labels,
    as the official code does with a labelled dataset and cond=False: returns the line to log
    ('' when there is nothing to say)."""
    where = (f"data.path={data_cfg.get('path')!r}" if data_cfg.get("path")
             else f"data.name={data_cfg.get('name')!r}")
    if data_classes > 1 and not model_classes:
        return (f"{where} has {data_classes} classes; config.model.n_classes=0 "
                "(unconditional): the labels are not used")
    if data_classes > max(model_classes, 1):
        raise ValueError(f"config.model.n_classes={model_classes} but {where} has "
                         f"{data_classes} classes")
    return ""


def check_feature_weights(model_cfg, field: str, ident: str, role: str, log: logging.Logger,
                          family: str, random_note: str = "") -> None:
    """One frozen feature net's weight file `config.model.<field>` (StyleGAN-XL / -T): a given
    path must exist; none is an error when model.feature_nets is 'pretrained', else the net is
    random-initialised. Logs which (`random_note` is appended to the random case's line)."""
    if model_cfg.feature_nets not in ("pretrained", "random"):
        raise ValueError(f"config.model.feature_nets: expected 'pretrained' or 'random', got "
                         f"{model_cfg.feature_nets!r}")
    path = model_cfg.get(field, "")
    if path and not os.path.isfile(path):
        raise FileNotFoundError(f"config.model.{field}={path}: no such file (the {role}, "
                                f"{ident})")
    if not path and model_cfg.feature_nets == "pretrained":
        raise FileNotFoundError(
            f"config.model.{field} is empty: the {role} needs the weights of {ident} (a "
            f".safetensors/.npz state dict; or set config.model.feature_nets=random)")
    log.info(
        "%s %s (%s): %s", family, role, ident,
        f"weights from {path}" if path else f"RANDOM init (no weight file{random_note})")
