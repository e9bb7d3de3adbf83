"""One run per workdir, and config compatibility on resume (issue #19 items 2 and 3).

- `RunLock`: <workdir>/run.lock names the training process holding the workdir (host, pid,
  start time). A second run refuses to start, naming the holder. A lock is stale, and taken
  over, when its holder is on this host and no longer alive, or is on another host and has not
  refreshed the lock for STALE_AFTER_S (the holder touches it every HEARTBEAT_S); otherwise
  --config.force_unlock=True takes it. Only training takes it (sampling and eval only read).
- `IncompatibleState`: a checkpoint whose saved state tree differs in shapes/dtypes from the
  state this config builds; `reset_or_raise` turns it into an error naming the differing config
  keys, or (config.allow_reset) moves the old checkpoints aside so the run starts fresh.
- `record_config`: config.json (rewritten only after the checks) and config_<step>.json, the
  config of each start or resume, with the changes since the previous config logged.
"""

import json
import logging
import os
import socket
import threading
import time
import uuid

import jax

log = logging.getLogger("gan_zoo.train")

LOCK_NAME = "run.lock"
HEARTBEAT_S = 60.0  # how often the holder refreshes the lock's mtime
STALE_AFTER_S = 600.0  # a lock from another host unrefreshed this long is stale
# Config keys whose change never alters the state: shown as a diff on resume, never an error.
HARMLESS_PREFIXES = ("train.num_steps", "log.", "eval.", "checkpoint.", "sample.", "data.data_dir",
                     "data.prefetch", "data.loader", "allow_reset", "force_unlock",
                     "matmul_precision")


# ----- Lock -----


def _proc_start(pid: int):
    """The start time of process `pid` in clock ticks since boot (Linux), or None: tells a
    live holder from a new process that reused its pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int, start) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    now = _proc_start(pid)
    return start is None or now is None or now == start


class WorkdirInUse(ValueError):
    """Another live training run holds the workdir's lock (a user-facing error: one line)."""


def _describe(holder: dict) -> str:
    return (f"pid {holder.get('pid')} on host {holder.get('host')!r}, started "
            f"{holder.get('started', '?')}")


class RunLock:
    """<workdir>/run.lock while a training run holds the workdir; a context manager.

    Created atomically (written to a private file, then hard-linked to run.lock), so a reader
    never sees half a lock. Released on exit, also on exceptions; a SIGKILLed holder leaves a
    lock that the next run on the same host takes over (its pid is gone).
    """

    def __init__(self, workdir: str, force: bool = False):
        self.path = os.path.join(os.path.abspath(workdir), LOCK_NAME)
        self.force = force
        self.me = {"host": socket.gethostname(), "pid": os.getpid(),
                   "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                   "proc_start": _proc_start(os.getpid()), "token": uuid.uuid4().hex}
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def acquire(self) -> None:
        """Takes the lock, or raises WorkdirInUse naming its live holder."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        for _ in range(3):  # a stale lock is removed, then the link is tried again
            if self._try_link():
                self._start_heartbeat()
                return
            holder = self.read()
            reason = self._stale_reason(holder)
            if reason is None:
                raise WorkdirInUse(
                    f"{self.path}: this workdir is in use by another training run ("
                    f"{_describe(holder)}). Stop that run, or use another --workdir; if it is "
                    f"dead (e.g. its machine is gone), pass --config.force_unlock=True.")
            log.warning("Taking over the lock %s of %s: %s", self.path, _describe(holder),
                        reason)
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        raise WorkdirInUse(f"{self.path}: could not take the lock (another run keeps taking it)")

    def _try_link(self) -> bool:
        tmp = f"{self.path}.{self.me['token']}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.me, f)
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def read(self) -> dict:
        """The holder's record ({} when the lock vanished or cannot be parsed)."""
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _stale_reason(self, holder: dict):
        """Why the lock of `holder` may be taken over, or None when it may not."""
        if self.force:
            return "config.force_unlock=True"
        if not holder:
            return "its lock file is unreadable"
        if holder.get("host") == self.me["host"]:  # this pid too: a restarted container's
            if not _alive(int(holder.get("pid", -1)), holder.get("proc_start")):
                return "that process is not running"
            return None
        try:
            age = time.time() - os.path.getmtime(self.path)
        except OSError:
            return "its lock file vanished"
        if age > STALE_AFTER_S:
            return f"not refreshed for {age:.0f} s (> {STALE_AFTER_S:.0f} s)"
        return None

    def _start_heartbeat(self) -> None:
        def beat():
            while not self._stop.wait(HEARTBEAT_S):
                try:
                    os.utime(self.path)
                except OSError:
                    pass
        self._thread = threading.Thread(target=beat, name="gan_zoo-run-lock", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Removes the lock if it is still this run's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            if self.read().get("token") == self.me["token"]:
                os.unlink(self.path)


def lock_for(config, workdir: str):
    """The RunLock of a training run (the main process only; multi-host runs share the workdir
    and the main process speaks for all), else a no-op context."""
    import contextlib  # noqa: PLC0415

    if jax.process_index() != 0:
        return contextlib.nullcontext()
    return RunLock(workdir, force=bool(config.get("force_unlock", False)))


# ----- State and config compatibility -----


def _key_name(entry) -> str:
    for attr in ("key", "name", "idx"):  # DictKey, GetAttrKey, SequenceKey / FlattenedIndexKey
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def _leaf_specs(tree) -> dict:
    """{'params/g/linear/kernel': (shape, dtype name)} of a state tree, its abstract form or
    Orbax's metadata of it (a dict where the GANState has fields; the names agree)."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    out = {}
    for path, leaf in flat:
        dtype = getattr(leaf, "dtype", None)
        out["/".join(_key_name(e) for e in path)] = (
            tuple(getattr(leaf, "shape", ())), getattr(dtype, "name", str(dtype)))
    return out


def _params_first(key: str):
    """Sort key: the networks' parameters first (they name the layers), then the rest."""
    return (not key.startswith("params/"), key)


def tree_differences(saved, abstract) -> list:
    """Lines naming each leaf whose shape or dtype differs between the saved state (Orbax
    metadata) and the abstract state this config builds, and the leaves only one of them has."""
    old, new = _leaf_specs(saved), _leaf_specs(abstract)
    out = [f"{k}: saved {old[k][0]} {old[k][1]}, now {new[k][0]} {new[k][1]}"
           for k in sorted(old.keys() & new.keys(), key=_params_first) if old[k] != new[k]]
    out += [f"{k}: only in the checkpoint" for k in sorted(old.keys() - new.keys())]
    out += [f"{k}: only in this config's state" for k in sorted(new.keys() - old.keys())]
    return out


class IncompatibleState(ValueError):
    """A checkpoint whose state tree differs in shapes/dtypes from the one the config builds
    (not corruption: the checkpoint is left where it is)."""

    def __init__(self, path: str, step: int, differences: list):
        self.path, self.step, self.differences = path, step, differences
        more = f"; ... ({len(differences)} in all)" if len(differences) > 6 else ""
        super().__init__(f"checkpoint {path} (step {step}) holds a state of other shapes than "
                         f"this config builds: {'; '.join(differences[:6])}{more}")


def flat_config(d, prefix: str = "") -> dict:
    """A config dict as {'model.G_ch': 8, ...}."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_changes(old: dict, new: dict) -> list:
    """[(key, old value, new value)] of the keys that differ (absent: None), sorted."""
    a, b = flat_config(old), flat_config(new)
    return [(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


def _harmless(key: str) -> bool:
    return any(key == p or key.startswith(p) for p in HARMLESS_PREFIXES)


def _format(changes, limit: int = 12) -> str:
    shown = ", ".join(f"{k}: {o!r} -> {n!r}" for k, o, n in changes[:limit])
    return shown + (f", ... ({len(changes)} in all)" if len(changes) > limit else "")


def saved_config(ckpt, step: int):
    """The config saved with checkpoint `step`, else <workdir>/config.json, else None."""
    try:
        return ckpt.restore_config(step)
    except Exception:  # noqa: BLE001  (a damaged config item: config.json is the fallback)
        pass
    try:
        with open(os.path.join(os.path.dirname(ckpt.directory), "config.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _changed_keys(err: IncompatibleState, config, ckpt) -> str:
    """'config keys that differ from the checkpoint's: model.G_ch: 8 -> 4, ...' (harmless
    keys left out when others differ)."""
    old = saved_config(ckpt, err.step)
    changes = config_changes(old, json.loads(config.to_json_best_effort())) if old else []
    keys = [c for c in changes if not _harmless(c[0])] or changes
    if not keys:
        return "config equals the checkpoint's (a changed networks file or recipe code?)"
    return f"config keys that differ from the checkpoint's: {_format(keys)}"


def incompatible_error(err: IncompatibleState, config, ckpt) -> ValueError:
    """For sampling and eval: err plus the differing config keys."""
    return ValueError(f"{err}.\nThe {_changed_keys(err, config, ckpt)}; use the config the "
                      f"run was trained with (its config.json).")


def reset_or_raise(err: IncompatibleState, config, ckpt) -> None:
    """On a resume whose config changes the state's shapes: a ValueError naming the config keys
    that differ from the checkpoint's and the way forward; with config.allow_reset=True, moves
    every checkpoint aside (<step>.reset-<time>, never deleted) so the run starts fresh."""
    what = _changed_keys(err, config, ckpt)
    if not config.get("allow_reset", False):
        raise ValueError(
            f"cannot resume: {err}.\nThe {what}.\nEither restore those values, use a new "
            f"--workdir, or pass --config.allow_reset=True to start from step 0 in this "
            f"workdir (its checkpoints are moved aside, not deleted).") from None
    moved = ckpt.move_all_aside(time.strftime("reset-%Y%m%dT%H%M%S"))
    log.warning("config.allow_reset=True: the %s; moved the old checkpoints aside (%s) and "
                "starting from step 0", what, ", ".join(moved))


def restore_checked(restore, config, ckpt):
    """restore() (a resume or a fresh state); when the checkpoint's shapes differ from this
    config's: reset_or_raise, then restore() again (it starts fresh after a reset)."""
    try:
        return restore()
    except IncompatibleState as e:
        reset_or_raise(e, config, ckpt)
        return restore()


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def record_config(config, workdir: str, step: int, is_main: bool = True) -> None:
    """After the resume checks: logs the changes since the previous config.json (a short diff),
    then writes config.json and config_<step>.json (the config each start/resume used)."""
    if not is_main:
        return
    path = os.path.join(workdir, "config.json")
    text = config.to_json_best_effort(indent=2)
    try:
        with open(path) as f:
            changes = config_changes(json.load(f), json.loads(text))
    except (OSError, ValueError):
        changes = []
    if changes and step > 0:
        log.info("Resuming at step %d with config changes: %s", step, _format(changes))
    _write_atomic(path, text)
    _write_atomic(os.path.join(workdir, f"config_{step}.json"), text)
