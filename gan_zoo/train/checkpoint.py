"""Orbax checkpoints in <workdir>/checkpoints: the GANState and the config (JSON) per step.

Saves are asynchronous and atomic (Orbax writes to a temporary folder and renames it); the K
newest are kept. Restore uses an abstract state carrying the target shardings; a checkpoint
that cannot be read is moved aside to <step>.corrupt and the next older one is used.

With `config.checkpoint.best_metric` (e.g. "fid"), the checkpoint with the best value of that
periodic-eval metric is also kept, in <workdir>/checkpoints_best (its own Orbax folder holding
one step, plus best.json with the metric, mode and value), beside the K newest; `--step=best`
restores it (`open_for_step`).
"""

import json
import logging
import math
import os

import jax
import numpy as np

from gan_zoo.train import save_watch, workdir

log = logging.getLogger("gan_zoo.train")


class Checkpointer:
    """A thin wrapper over ocp.CheckpointManager with items `state` and `config`."""

    def __init__(self, workdir: str, keep: int = 3, use_async: bool = True,
                 subdir: str = "checkpoints"):
        import orbax.checkpoint as ocp  # noqa: PLC0415

        self._ocp = ocp
        self.directory = os.path.join(os.path.abspath(workdir), subdir)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               enable_async_checkpointing=use_async)
        self.manager = ocp.CheckpointManager(self.directory, item_names=("state", "config"),
                                             options=options)
        self.watch = save_watch.SaveWatcher(self.manager, self.directory)

    def latest_step(self):
        """The newest complete checkpoint's step, or None."""
        return self.manager.latest_step()

    def save(self, step: int, state, config_dict: dict) -> None:
        """Starts an (async) save of `state` and the config at `step`. A failed save is logged
        at once in one line and raised (save_watch.SaveFailed) by check(), wait() or here."""
        self.watch.join()  # the previous save: raises its failure
        args = self._ocp.args
        try:
            self.manager.save(step, args=args.Composite(
                state=args.StandardSave(state), config=args.JsonSave(config_dict)), force=True)
        except Exception as e:  # noqa: BLE001 (disk full, permissions, ...: one line)
            self.watch.failed(step, e)
            self.watch.check()
        self.watch.started(step)

    def check(self) -> None:
        """Raises save_watch.SaveFailed if an async save has failed (does not block)."""
        self.watch.check()

    def restore(self, abstract_state, step=None):
        """The state of the newest checkpoint that restores (or of `step`), placed with
        abstract_state's shardings.

        abstract_state: the abstract GANState (ShapeDtypeStructs with shardings), or a callable
        step -> abstract GANState when the state's shapes depend on the step (staged runs whose
        stages differ in shape, e.g. StyleGAN-XL's growing generator).

        A checkpoint that cannot be read (missing or garbled files or metadata, an empty folder)
        is reported in one log line, moved aside to <step>.corrupt (never deleted) and the next
        older one is tried; FileNotFoundError lists what was tried when none restores. A given
        `step` is the only one tried. A checkpoint of other shapes than abstract_state raises
        workdir.IncompatibleState and stays where it is. Multi-host: every host tries each step,
        the hosts agree (all must succeed), the main process moves folders, the others wait.
        """
        steps = sorted(self.manager.all_steps(), reverse=True)
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory}; train first "
                                    "(--mode=train with the same --workdir)")
        if step is not None:
            if step not in steps:
                raise FileNotFoundError(f"no checkpoint at step {step} in {self.directory} "
                                        f"(it has steps {sorted(steps)})")
            steps = [step]
        tried = []
        for s in steps:
            abstract = abstract_state(s) if callable(abstract_state) else abstract_state
            state, reason = self._try_restore(s, abstract)
            if _all_hosts(reason is None):
                return state
            reason = reason or "another host could not restore it"
            aside = self.move_aside(s, "corrupt")
            log.warning("Checkpoint %s cannot be restored (%s); moved it to %s%s",
                        self.step_path(s), reason, aside,
                        "; trying the next older one" if s != steps[-1] else "")
            tried.append(f"step {s} ({reason})")
        raise FileNotFoundError(
            f"no checkpoint in {self.directory} could be restored; tried {'; '.join(tried)}. "
            f"Each was moved to <step>.corrupt there (nothing was deleted); a new training run "
            f"in this workdir would start from step 0.")

    def _try_restore(self, step: int, abstract):
        """(state, None), or (None, reason) when checkpoint `step` cannot be read."""
        try:
            self._check_shapes(step, abstract)
            args = self._ocp.args
            out = self.manager.restore(step, args=args.Composite(
                state=args.StandardRestore(abstract)))
            return out.state, None
        except (workdir.IncompatibleState, MemoryError, PermissionError):  # not corruption
            raise
        except Exception as e:  # noqa: BLE001  (Orbax/TensorStore raise many kinds)
            if any(tag in str(e) for tag in _NOT_CORRUPTION):
                raise
            return None, _reason(e)

    def _check_shapes(self, step: int, abstract) -> None:
        """Raises IncompatibleState when the saved tree differs from abstract in leaves, shapes
        or dtypes (read from the checkpoint's metadata; raises as corrupt when unreadable)."""
        from etils import epath  # noqa: PLC0415

        meta = self._ocp.StandardCheckpointHandler().metadata(
            epath.Path(self.step_path(step)) / "state")
        differences = workdir.tree_differences(getattr(meta, "tree", meta), abstract)
        if differences:
            raise workdir.IncompatibleState(self.step_path(step), step, differences)

    def step_path(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def move_aside(self, step: int, tag: str) -> str:
        """Renames checkpoint `step` to <step>.<tag> (a name Orbax does not read as a step;
        <step>.<tag>1, ... when taken); returns the new path."""
        src = self.step_path(step)
        dst, i = f"{src}.{tag}", 1
        while os.path.exists(dst):
            dst, i = f"{src}.{tag}{i}", i + 1
        if jax.process_index() == 0:
            try:
                os.rename(src, dst)
            except FileNotFoundError:  # removed meanwhile (the retention of a running training)
                dst = "nowhere (it was removed meanwhile)"
        _sync_hosts(f"gan_zoo_move_aside_{step}_{tag}")
        self.manager.reload()
        return dst

    def move_all_aside(self, tag: str) -> list:
        """Moves every checkpoint aside (see move_aside), and the run's best checkpoint folder
        (<workdir>/checkpoints_best -> checkpoints_best.<tag>); returns the new paths."""
        moved = [self.move_aside(s, tag) for s in sorted(self.manager.all_steps())]
        best = os.path.join(os.path.dirname(self.directory), BEST_SUBDIR)
        if os.path.basename(self.directory) != BEST_SUBDIR and os.path.isdir(best):
            if jax.process_index() == 0:
                os.rename(best, f"{best}.{tag}")
            _sync_hosts(f"gan_zoo_move_best_aside_{tag}")
            moved.append(f"{best}.{tag}")
        return moved

    def restore_config(self, step=None) -> dict:
        step = self.latest_step() if step is None else step
        args = self._ocp.args
        return self.manager.restore(step, args=args.Composite(config=args.JsonRestore())).config

    def wait(self) -> None:
        """Blocks until pending async saves are committed (SaveFailed if one failed)."""
        self.watch.join()
        if self.watch.error is None:
            self.manager.wait_until_finished()

    def close(self) -> None:
        self.watch.join(check=False)
        try:
            self.manager.close()
        except Exception:  # noqa: BLE001
            if self.watch.error is None:  # else: a failed save, reported when it failed
                raise


# Errors that say nothing about the checkpoint's files: re-raised, never moved aside.
_NOT_CORRUPTION = ("RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "UNAVAILABLE", "PERMISSION_DENIED")


def _reason(e: BaseException) -> str:
    """One line: the innermost error (TensorStore's names the file) as 'Type: message'."""
    while e.__cause__ is not None or (e.__context__ is not None and not e.__suppress_context__):
        e = e.__cause__ or e.__context__
    text = " ".join(str(e).split()).split(" See full TensorStore details")[0]
    return f"{type(e).__name__}: {text[:240]}"


def _all_hosts(ok: bool) -> bool:
    """Whether `ok` holds on every host (multi-host: all-gathered)."""
    if jax.process_count() == 1:
        return ok
    from jax.experimental import multihost_utils  # noqa: PLC0415

    return bool(np.all(multihost_utils.process_allgather(np.int32(ok))))


def _sync_hosts(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils  # noqa: PLC0415

        multihost_utils.sync_global_devices(name)


BEST_SUBDIR = "checkpoints_best"
BEST_JSON = "best.json"
# Direction of the known metrics (config.checkpoint.best_mode "" picks from here).
LOWER_IS_BETTER = ("fid", "kid", "sfid", "rfid", "swd", "ppl", "eqt_int", "eqt_frac", "eqr")
HIGHER_IS_BETTER = ("is", "precision", "recall", "ms_ssim", "clip_score")


def best_mode(metric: str, mode: str = "") -> str:
    """'min' or 'max' for `metric`: `mode` when given, else from the metric's known direction."""
    if mode:
        if mode not in ("min", "max"):
            raise ValueError(f"config.checkpoint.best_mode: expected 'min', 'max' or '' (from the "
                             f"metric), got {mode!r}")
        return mode
    if metric in LOWER_IS_BETTER:
        return "min"
    if metric in HIGHER_IS_BETTER:
        return "max"
    raise ValueError(f"config.checkpoint.best_metric={metric!r} has no known direction: set "
                     "config.checkpoint.best_mode to 'min' or 'max'")


class BestKeeper:
    """Keeps the checkpoint whose `metric` (a key of the periodic eval's values) is best so far
    in <workdir>/checkpoints_best, independent of the K-newest rotation (BigGAN's training kept
    the best-FID weights the same way). Resume-safe: the best value is read from best.json."""

    def __init__(self, workdir: str, metric: str, mode: str = ""):
        self.metric, self.mode = metric, best_mode(metric, mode)
        self.ckpt = Checkpointer(workdir, 1, False, subdir=BEST_SUBDIR)
        self.record = os.path.join(self.ckpt.directory, BEST_JSON)
        self.best = _read_best(self.record, metric, self.mode)

    def better(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best["value"] if self.mode == "min" else value > self.best["value"]

    def update(self, step: int, state, config_dict: dict, values: dict) -> bool:
        """Saves `state` as the best checkpoint when values[metric] beats the best so far (the
        previous best is then removed); returns whether it did."""
        if self.metric not in values:
            log.warning("checkpoint.best_metric=%r: not among this eval's metrics %s (check "
                        "config.eval.metrics and its weight files); best checkpoint unchanged",
                        self.metric, sorted(values))
            return False
        value = float(values[self.metric])
        if not self.better(value):
            return False
        self.ckpt.save(step, state, config_dict)
        self.ckpt.wait()
        self.best = {"metric": self.metric, "mode": self.mode, "value": value, "step": step}
        if jax.process_index() == 0:
            tmp = self.record + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.best, f, indent=2)
            os.replace(tmp, self.record)
        log.info("best %s %.6g at step %d: kept in %s", self.metric, value, step,
                 self.ckpt.directory)
        return True

    def close(self) -> None:
        self.ckpt.close()


def _read_best(path: str, metric: str, mode: str):
    """best.json's record, or None (absent, or of another metric/mode: then a new best starts)."""
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        best = json.load(f)
    if best.get("metric") != metric or best.get("mode") != mode:
        log.warning("%s records the best %s (%s); config.checkpoint asks for %s (%s): the next "
                    "eval replaces it", path, best.get("metric"), best.get("mode"), metric, mode)
        return None
    return best


def open_for_step(workdir: str, keep: int, step="latest"):
    """(Checkpointer, step or None) for the CLI's --step: 'latest' (None: the newest that
    restores), 'best' (the checkpoint kept by config.checkpoint.best_metric) or a step number."""
    spec = str(step).strip().lower()
    if spec in ("latest", "", "none"):
        return Checkpointer(workdir, keep, False), None
    if spec == "best":
        ckpt = Checkpointer(workdir, 1, False, subdir=BEST_SUBDIR)
        best = ckpt.latest_step()
        if best is None:
            ckpt.close()
            raise FileNotFoundError(
                f"--step=best: no best checkpoint in {ckpt.directory} (train with "
                "config.checkpoint.best_metric set and config.eval.every > 0)")
        return ckpt, best
    if not spec.isdigit():
        raise ValueError(f"--step: expected 'latest', 'best' or a step number, got {step!r}")
    return Checkpointer(workdir, keep, False), int(spec)
