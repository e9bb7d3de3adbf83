"""Golden harness: checks gan_zoo against reference outputs of the official PyTorch code.

    python -m gan_zoo.tools.golden PATH [PATH ...] [--impl xla|pallas]

Each PATH is a case (`NAME.npz` / `NAME.json`, either file or the stem) or a folder of cases, in
the format of `shared/golden/README.md`. For every case the harness loads the torch-named inputs
and weights, runs each forward the JSON describes, and compares every stored output, gradient and
after-forward buffer. It prints one line per case, `PASS|FAIL NAME rel_l2=... max_abs=...`, then
`N passed, M failed`, and exits non-zero if any case failed or could not be run.
"""

import argparse
import dataclasses
import importlib
import json
import pathlib
import sys
import traceback

import numpy as np

# Relative-L2 criteria per array kind (issue #2): ops, network outputs/buffers, network gradients.
TOL_OP = 1e-5
TOL_NET_OUT = 1e-4
TOL_NET_GRAD = 5e-3
COMPARED_PREFIXES = ("output/", "grad/", "buffer_after_")

# Case runners by the JSON's `function` (ops; the part before any space) or `class_name`
# (networks). Values are "module:function" under gan_zoo, imported only when a case needs them.
RUNNERS = {
    "torch_utils.ops.bias_act.bias_act": "gan_zoo.tools.golden_ops:run_bias_act",
    "torch_utils.ops.upfirdn2d.upfirdn2d": "gan_zoo.tools.golden_ops:run_upfirdn2d",
    "torch_utils.ops.upfirdn2d.upsample2d": "gan_zoo.tools.golden_ops:run_upfirdn2d",
    "torch_utils.ops.upfirdn2d.downsample2d": "gan_zoo.tools.golden_ops:run_upfirdn2d",
    "torch_utils.ops.upfirdn2d.filter2d": "gan_zoo.tools.golden_ops:run_upfirdn2d",
    "torch_utils.ops.conv2d_resample.conv2d_resample":
        "gan_zoo.tools.golden_ops:run_conv2d_resample",
    "torch_utils.ops.filtered_lrelu.filtered_lrelu": "gan_zoo.tools.golden_ops:run_filtered_lrelu",
    "training.networks_stylegan2.modulated_conv2d": "gan_zoo.tools.golden_ops:run_modconv2",
    "training.networks_stylegan3.modulated_conv2d": "gan_zoo.tools.golden_ops:run_modconv3",
    "training.networks_stylegan3.SynthesisLayer.design_lowpass_filter":
        "gan_zoo.tools.golden_ops:run_design_lowpass",
    "training.networks_stylegan2.MinibatchStdLayer(group_size,":
        "gan_zoo.tools.golden_ops:run_mbstd",
    "training.networks_stylegan3.SynthesisInput(**kwargs).forward":
        "gan_zoo.tools.golden_ops:run_sg3_input",
    # Networks: each family's converter module provides its runners.
    "BigGAN.Generator": "gan_zoo.convert.biggan:golden_generator",
    "BigGAN.Discriminator": "gan_zoo.convert.biggan:golden_discriminator",
    "BigGANdeep.Generator": "gan_zoo.convert.biggan:golden_generator",
    "BigGANdeep.Discriminator": "gan_zoo.convert.biggan:golden_discriminator",
    "training.networks_stylegan2.Generator": "gan_zoo.convert.stylegan2:golden_generator",
    "training.networks_stylegan2.Discriminator": "gan_zoo.convert.stylegan2:golden_discriminator",
    "training.networks_stylegan3.Generator": "gan_zoo.convert.stylegan3:golden_generator",
    "networks.generator.Generator": "gan_zoo.convert.stylegan_t:golden_generator",
    "torch_fidelity.feature_extractor_inceptionv3.FeatureExtractorInceptionV3":
        "gan_zoo.convert.inception:golden_inception",
    "timm.models.efficientnet.EfficientNetFeatures": "gan_zoo.convert.efficientnet:golden_effnet",
    "timm.models.deit.VisionTransformerDistilled": "gan_zoo.convert.vit:golden_timm_vit",
    "timm.models.vision_transformer.VisionTransformer": "gan_zoo.convert.vit:golden_timm_vit",
    "open_clip.model.CLIP": "gan_zoo.convert.clip:golden_clip",
}


@dataclasses.dataclass
class Case:
    name: str
    meta: dict  # the JSON
    arrays: dict  # every array of the .npz by key
    path: pathlib.Path | None = None  # the case's stem (its folder may hold referenced weights)

    def prefixed(self, prefix: str) -> dict:
        """{rest: array} for keys 'prefix/rest'."""
        head = prefix + "/"
        return {k[len(head):]: v for k, v in self.arrays.items() if k.startswith(head)}

    @property
    def is_op(self) -> bool:
        return self.meta.get("kind") == "op"


@dataclasses.dataclass
class Result:
    name: str
    passed: bool
    rel_l2: float = 0.0  # worst relative L2 over the compared arrays
    max_abs: float = 0.0  # worst max-abs error over the compared arrays
    detail: str = ""


def load_case(stem: pathlib.Path) -> Case:
    """Loads NAME.json + NAME.npz given either file or the stem."""
    stem = stem.with_suffix("") if stem.suffix in (".json", ".npz") else stem
    json_path, npz_path = stem.with_suffix(".json"), stem.with_suffix(".npz")
    for p in (json_path, npz_path):
        if not p.is_file():
            raise FileNotFoundError(f"golden case {stem.name}: missing {p}")
    meta = json.loads(json_path.read_text())
    with np.load(npz_path) as data:
        arrays = {k: data[k] for k in data.files}
    return Case(stem.name, meta, arrays, stem)


def find_cases(paths) -> list[pathlib.Path]:
    """Case stems from files and folders (sorted, de-duplicated)."""
    stems = []
    for p in map(pathlib.Path, paths):
        if p.is_dir():
            stems += [q.with_suffix("") for q in sorted(p.glob("*.json"))]
        elif p.exists() or p.with_suffix(".json").exists() or p.with_suffix(".npz").exists():
            stems.append(p.with_suffix("") if p.suffix in (".json", ".npz") else p)
        else:
            raise FileNotFoundError(f"golden: no case or folder at {p}")
    return sorted(dict.fromkeys(stems))


def runner_for(meta: dict):
    """The runner function for a case, or raises NotImplementedError naming what is missing."""
    key = (meta.get("function") or "").split(" ")[0] if meta.get("kind") == "op" else None
    key = key or meta.get("class_name") or (meta.get("create_model") or {}).get("model_name")
    target = RUNNERS.get(key)
    if target is None:
        family = meta.get("family", "?")
        raise NotImplementedError(f"gan_zoo does not support {key!r} ({family}) yet")
    module, fn = target.split(":")
    try:
        return getattr(importlib.import_module(module), fn)
    except (ModuleNotFoundError, AttributeError) as e:
        raise NotImplementedError(f"gan_zoo does not support {key!r} yet ({e})") from None


def compare(key: str, got, want) -> tuple[float, float]:
    """(relative L2, max abs) of got vs want; integer arrays must match exactly."""
    got = np.asarray(got)
    if got.shape != want.shape:
        raise ValueError(f"{key}: shape {got.shape}, expected {want.shape}")
    if np.issubdtype(want.dtype, np.integer):
        bad = int(np.sum(got != want))
        return (float("inf") if bad else 0.0), float(bad)
    diff = got.astype(np.float64) - want.astype(np.float64)
    norm = np.linalg.norm(want.astype(np.float64))
    err = np.linalg.norm(diff)
    rel = err / norm if norm > 0 else err
    return float(rel), float(np.max(np.abs(diff))) if diff.size else 0.0


def tolerance(case: Case, key: str) -> float:
    """TOL_* by kind; a network gradient whose OWN float32 error (the JSON's
    tolerances.float32_vs_float64_rel_l2[key], e.g. 7.1e-3 for feat_effnet_lite0 grad/x: ReLU6
    kinks flipping under rounding) exceeds half of TOL_NET_GRAD gets twice that error, the bound
    that a port exactly as precise as the reference meets (|ours - ref| <= |ours - f64| +
    |f64 - ref|; golden README "Observed tolerances": the stored rel-L2 gives the scale)."""
    if case.is_op:
        return TOL_OP
    if not key.startswith("grad/"):
        return TOL_NET_OUT
    own = ((case.meta.get("tolerances") or {}).get("float32_vs_float64_rel_l2") or {}).get(key)
    return max(TOL_NET_GRAD, 2.0 * own) if isinstance(own, (int, float)) else TOL_NET_GRAD


def check_case(case: Case, impl: str) -> Result:
    """Runs one case and compares every stored output, gradient and after-forward buffer."""
    got = runner_for(case.meta)(case, impl=impl)
    keys = [k for k in case.arrays if k.startswith(COMPARED_PREFIXES)]
    worst_rel, worst_abs, failures = 0.0, 0.0, []
    for key in keys:
        if key not in got:
            failures.append(f"{key}: not computed")
            continue
        rel, mx = compare(key, got[key], case.arrays[key])
        worst_rel, worst_abs = max(worst_rel, rel), max(worst_abs, mx)
        if not rel <= tolerance(case, key):
            failures.append(f"{key}: rel_l2={rel:.2e} > {tolerance(case, key):.0e}")
    if not keys:
        failures.append("no output/grad/buffer arrays to compare")
    return Result(case.name, not failures, worst_rel, worst_abs, "; ".join(failures))


def run(paths, impl: str = "xla", verbose: bool = False, out=sys.stdout) -> tuple[int, int]:
    """Checks every case under `paths`; prints one line per case and the summary."""
    import jax

    jax.config.update("jax_default_matmul_precision", "highest")
    passed = failed = 0
    for stem in find_cases(paths):
        try:
            res = check_case(load_case(stem), impl)
        except Exception as e:  # A case that cannot run is a FAIL, never a skip.
            res = Result(stem.name, False, float("nan"), float("nan"), f"{type(e).__name__}: {e}")
            if verbose:
                traceback.print_exc()
        line = (f"{'PASS' if res.passed else 'FAIL'} {res.name} rel_l2={res.rel_l2:.3e} "
                f"max_abs={res.max_abs:.3e}")
        print(line + (f"  [{res.detail}]" if res.detail else ""), file=out, flush=True)
        passed, failed = passed + res.passed, failed + (not res.passed)
    print(f"{passed} passed, {failed} failed", file=out, flush=True)
    return passed, failed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="case files/stems or folders of cases")
    parser.add_argument("--impl", choices=["xla", "pallas"], default="xla",
                        help="op implementation under test")
    parser.add_argument("-v", "--verbose", action="store_true", help="print tracebacks")
    args = parser.parse_args(argv)
    try:
        passed, failed = run(args.paths, impl=args.impl, verbose=args.verbose)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
