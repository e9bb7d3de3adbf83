"""gan_zoo vs the official PyTorch code, side by side (issue #20 item 5).

    python benchmarks/vs_official.py --stylegan3-path /path/to/NVlabs/stylegan3 \
        --biggan-path /path/to/ajbrock/BigGAN-PyTorch [--threads 1] [--rounds 5] \
        [--items sg2_g,sg2_train,sg2_train_r1,sg3_g,biggan_deep_train,fid_inception] \
        [--res 64] [--batch 0] [--cmax 512] [--json out.json]

Needs a Python with torch (and torch-fidelity for `fid_inception`) beside gan_zoo; the official
repositories are working trees fetched by the user, never copied here. For every item both sides
are built from the same official constructor kwargs: the official module is constructed (seed 0),
its state dict is converted with `gan_zoo.convert`, the forward outputs are checked equal
(rel-L2 < 1e-4, else the item is reported as not timed), then `--rounds` interleaved rounds are
timed (ours, theirs, ours, ...) after one warm-up call per side (our compile). The table gives
the median per side and the ratio gan_zoo / official (lower is better).

Threads (`--threads n`, set before jax is imported): torch.set_num_threads(n) and
set_num_interop_threads(1) on the official side. XLA: n = 1 runs
`--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`; n > 1 keeps Eigen's
multi-threading on with intra_op_parallelism_threads=n. In both cases the process is pinned to
n CPUs (sched_setaffinity) when more are available, so neither side can use more cores.
"""

import argparse
import dataclasses
import importlib.util
import json
import os
import pathlib
import platform
import statistics
import sys
import time
from typing import Callable, Optional

REPO = pathlib.Path(__file__).resolve().parent.parent
ITEMS = {  # name -> table label (issue #20's table)
    "sg2_g": "StyleGAN2 config-F layout, G forward (inference default modconv)",
    "sg2_train": "StyleGAN2 training iteration (G main, D main, EMA), no R1",
    "sg2_train_r1": "StyleGAN2 training iteration, R1 every step",
    "sg3_g": "StyleGAN3-T, G forward",
    "biggan_deep_train": "BigGAN-deep training iteration",
    "fid_inception": "FID Inception-v3 pool3, images -> 299^2 (vs torch-fidelity)",
}
DEFAULT_BATCH = {"sg2_g": 8, "sg2_train": 8, "sg2_train_r1": 8, "sg3_g": 4,
                 "biggan_deep_train": 8, "fid_inception": 50}
NEEDS = {"sg2_g": "stylegan3", "sg2_train": "stylegan3", "sg2_train_r1": "stylegan3",
         "sg3_g": "stylegan3", "biggan_deep_train": "biggan", "fid_inception": None}
# A file that must exist under each repository path (names the checkout that is expected).
MARKERS = {"stylegan3": "training/networks_stylegan2.py", "biggan": "BigGANdeep.py"}
TOLERANCE = 1e-4  # rel-L2 of the outputs before anything is timed


class OutputsDiffer(RuntimeError):
    """The two sides disagree; the item is not timed."""


@dataclasses.dataclass
class Bench:
    """One item, built and checked: ours() / theirs() each run one timed call to completion."""

    ours: Callable[[], None]
    theirs: Callable[[], None]
    note: str = ""  # shapes and settings shown under the table


# ----------------------------------------------------------------------------------------------
# Arguments.

def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stylegan3-path", default="", help="NVlabs/stylegan3 working tree")
    ap.add_argument("--biggan-path", default="", help="ajbrock/BigGAN-PyTorch working tree")
    ap.add_argument("--threads", type=int, default=1, help="threads per side (see docstring)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall time, or the process's CPU time (for a shared machine)")
    ap.add_argument("--items", default=",".join(ITEMS), help="comma-separated subset of items")
    ap.add_argument("--res", type=int, default=64, help="image side of the G/D items")
    ap.add_argument("--batch", type=int, default=0,
                    help=f"batch of every item (0: the issue's {DEFAULT_BATCH})")
    ap.add_argument("--cmax", type=int, default=512,
                    help="channel_max of the StyleGAN items (official 512; smaller = quick run)")
    ap.add_argument("--biggan-ch", type=int, default=64, help="BigGAN-deep G_ch = D_ch")
    ap.add_argument("--inception-weights",
                    default=str(REPO.parent / "shared" / "golden" / "feat_inception_fid.npz"),
                    help="FID Inception state dict (.npz, golden param/ buffer/ format or plain)")
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args(argv)
    args.items = [s.strip() for s in args.items.split(",") if s.strip()]
    check_args(args)
    return args


def check_args(args) -> None:
    """ValueError / FileNotFoundError naming the flag and path that is wrong."""
    unknown = [i for i in args.items if i not in ITEMS]
    if unknown or not args.items:
        raise ValueError(f"--items: unknown {unknown}; expected some of {list(ITEMS)}")
    for name in ("threads", "rounds", "res"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    for repo in sorted({NEEDS[i] for i in args.items} - {None}):
        flag = f"--{repo}-path"
        path = getattr(args, f"{repo}_path")
        if not path:
            raise FileNotFoundError(f"{flag} is required for items "
                                    f"{[i for i in args.items if NEEDS[i] == repo]}")
        marker = pathlib.Path(path) / MARKERS[repo]
        if not marker.is_file():
            raise FileNotFoundError(f"{flag} {path}: no {MARKERS[repo]} there (expected a "
                                    f"working tree of the official repository)")
    if "fid_inception" in args.items and not pathlib.Path(args.inception_weights).is_file():
        raise FileNotFoundError(f"--inception-weights {args.inception_weights}: no such file")


def batch_of(args, item: str) -> int:
    return args.batch or DEFAULT_BATCH[item]


# ----------------------------------------------------------------------------------------------
# Threads (before jax is imported).

def xla_flags(threads: int) -> str:
    if threads == 1:
        return "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    return f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={threads}"


def pin_threads(threads: int) -> list:
    """XLA_FLAGS, CPU affinity and torch's thread counts; returns the CPUs used."""
    if "jax" in sys.modules:
        print("warning: jax was imported before the thread flags were set", file=sys.stderr)
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + xla_flags(threads)).strip()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > threads:
        cpus = cpus[:threads]
        os.sched_setaffinity(0, cpus)
    import torch  # noqa: PLC0415 (benchmark-only dependency, after the affinity is set)
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    return cpus


# ----------------------------------------------------------------------------------------------
# Checks, timing, table.

def rel_l2(ours, theirs) -> float:
    """||ours - theirs|| / ||theirs|| (both as float64 numpy arrays of the same shape)."""
    import numpy as np  # noqa: PLC0415
    a, b = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def check_equal(item: str, what: str, ours, theirs, tol: float = TOLERANCE) -> float:
    """rel-L2 of ours vs theirs; raises OutputsDiffer (item and output named) at >= tol."""
    import numpy as np  # noqa: PLC0415
    err = rel_l2(ours, theirs)
    if not err < tol:
        raise OutputsDiffer(f"{item}: outputs differ ({what}: rel-L2 {err:.3g} >= {tol:g}, "
                            f"shapes {np.shape(ours)} vs {np.shape(theirs)}); not timed")
    return err


def time_rounds(ours: Callable, theirs: Callable, rounds: int, clock: str = "wall") -> dict:
    """One warm-up call per side, then `rounds` interleaved rounds -> {side: [ms, ...]}.
    clock "cpu": the process's CPU time (both sides run in this process), steadier than wall
    time on a machine other jobs share."""
    now = time.process_time if clock == "cpu" else time.perf_counter
    ours()
    theirs()
    out = {"ours": [], "theirs": []}
    for _ in range(rounds):
        for side, fn in (("ours", ours), ("theirs", theirs)):
            t0 = now()
            fn()
            out[side].append((now() - t0) * 1e3)
    return out


def summarize(item: str, times: Optional[dict], error: str = "") -> dict:
    """Row of the table: medians and the ratio (None where the item was not timed)."""
    row = {"item": item, "label": ITEMS.get(item, item), "error": error}
    if times:
        ours, theirs = statistics.median(times["ours"]), statistics.median(times["theirs"])
        row.update(ours_ms=ours, official_ms=theirs, ratio=ours / theirs, times=times)
    return row


def format_table(rows: list, device: str) -> str:
    """Markdown: item | gan_zoo ms | official ms | ratio, then the device line."""
    lines = ["| item | gan_zoo ms | official ms | ratio |", "|---|---|---|---|"]
    for r in rows:
        if "ratio" in r:
            lines.append(f"| {r['label']} | {r['ours_ms']:.1f} | {r['official_ms']:.1f} | "
                         f"{r['ratio']:.2f} |")
        else:
            lines.append(f"| {r['label']} | - | - | not timed: {r['error']} |")
    return "\n".join(lines + ["", device])


def cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def device_line(threads: int, cpus: list, clock: str = "wall") -> str:
    import jax  # noqa: PLC0415
    import torch  # noqa: PLC0415
    return (f"Device: {cpu_model()}, {threads} thread(s) per side on CPU(s) {cpus}; "
            f"torch {torch.__version__}, jax {jax.__version__}; ratio = gan_zoo / official "
            f"(lower is better), median of the interleaved rounds "
            f"({'CPU time of the process' if clock == 'cpu' else 'wall time'}).")


# ----------------------------------------------------------------------------------------------
# Main.

def _items_module():
    """benchmarks/vs_official_items.py (the builders; imported after the thread setup)."""
    sys.modules.setdefault("vs_official", sys.modules[__name__])  # run as a script: __main__
    path = pathlib.Path(__file__).resolve().parent / "vs_official_items.py"
    spec = importlib.util.spec_from_file_location("vs_official_items", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_item(items_mod, args, item: str) -> dict:
    """Builds, checks and times one item; a failed check or build becomes a 'not timed' row."""
    print(f"[{item}] building and checking ...", flush=True)
    try:
        bench = items_mod.BUILDERS[item](args, item)
    except OutputsDiffer as e:
        print(f"[{item}] {e}", flush=True)
        return summarize(item, None, "outputs differ")
    times = time_rounds(bench.ours, bench.theirs, args.rounds, args.clock)
    row = summarize(item, times)
    row["note"] = bench.note
    print(f"[{item}] {bench.note}: gan_zoo {row['ours_ms']:.1f} ms, official "
          f"{row['official_ms']:.1f} ms, ratio {row['ratio']:.2f}", flush=True)
    return row


def main(argv=None) -> list:
    args = parse_args(argv)
    cpus = pin_threads(args.threads)
    sys.path.insert(0, str(REPO))
    items_mod = _items_module()
    items_mod.setup_official_imports(args)
    rows = [run_item(items_mod, args, item) for item in args.items]
    device = device_line(args.threads, cpus, args.clock)
    table = format_table(rows, device)
    print("\n" + table)
    notes = [f"- {r['item']}: {r['note']}" for r in rows if r.get("note")]
    print("\n".join(notes))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            {"rows": rows, "device": device, "args": vars(args)},
            indent=1))
    return rows


if __name__ == "__main__":
    main()
