"""What a person sees on the console: one progress line per log step, a short config summary,
and the quiet default for third-party INFO logs (Orbax, absl, TensorFlow)."""

import logging
import os
import sys
import threading

from gan_zoo.checks import config_get

BAR_WIDTH = 20
MAX_LOSSES = 6  # loss values shown on a progress line (all are in TensorBoard)
THIRD_PARTY_QUIET = ("absl", "orbax", "jax", "tensorflow", "clu", "etils", "fsspec")


def format_duration(seconds: float) -> str:
    """3725 -> '1h02m', 125 -> '2m05s', 7 -> '7s'."""
    s = max(int(round(seconds)), 0)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m{sec:02d}s" if m else f"{sec}s"


def _bar(frac: float) -> str:
    n = min(max(int(frac * BAR_WIDTH), 0), BAR_WIDTH)
    return "[" + "#" * n + "-" * (BAR_WIDTH - n) + "]"


def progress_line(step: int, num_steps: int, images_per_sec: float, eta_s: float,
                  metrics: dict, stage: str = "", bar: bool = False) -> str:
    """'step 120/250 (48%) | 35.2 img/s | d0/loss 1.23 g/loss 0.456 | ETA 1m05s'.

    metrics: host floats; the ones named *loss are shown (at most MAX_LOSSES). bar: a text bar
    instead of the percentage (when the console is a terminal).
    """
    frac = step / max(num_steps, 1)
    where = f"{_bar(frac)} {frac:.0%}" if bar else f"({frac:.0%})"
    parts = [f"step {step}/{num_steps} {where}" + (f" stage {stage}" if stage else ""),
             f"{images_per_sec:.1f} img/s"]
    losses = [f"{k} {v:.4g}" for k, v in sorted(metrics.items())
              if k.rsplit("/", 1)[-1].endswith("loss")][:MAX_LOSSES]
    if losses:
        parts.append(" ".join(losses))
    parts.append(f"ETA {format_duration(eta_s)}")
    return " | ".join(parts)


def console_is_terminal() -> bool:
    """Whether the progress line goes to a terminal (then it gets a bar)."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def _steps_text(steps) -> str:
    """train.num_steps for people: 0 means the recipe sets the length (staged presets)."""
    return "length set by the preset's stages" if steps == 0 else f"{steps} steps"


def summarize(config, workdir: str = "") -> str:
    """The config in a few lines (the whole of it is in <workdir>/config.json)."""
    model = config_get(config, "model.name", config.get("recipe", "?"))
    preset = config.get("preset", "")
    res, data = config_get(config, "model.resolution", "?"), config_get(config, "data.name", "?")
    n_classes = config_get(config, "model.n_classes", 0)
    lines = [f"{config.get('recipe', '?')}: {model}" + (f" preset {preset}" if preset else "")
             + f", {res}x{res}" + (f", {n_classes} classes" if n_classes else "")
             + f", data {data}",
             f"train: {_steps_text(config_get(config, 'train.num_steps', '?'))}, batch "
             f"{config_get(config, 'train.batch_size', '?')}, seed {config.get('seed', 0)}"]
    every = {name: config_get(config, path, 0) for name, path in (
        ("checkpoint", "checkpoint.every_steps"), ("log", "log.every_steps"),
        ("grid", "log.image_every_steps"), ("eval", "eval.every"))}
    lines.append("every: " + ", ".join(f"{k} {v} steps" if v else f"{k} off"
                                       for k, v in every.items()))
    if workdir:
        lines.append(f"full config: {os.path.join(workdir, 'config.json')}")
    return "\n".join(lines)


class DropReportedTracebacks(logging.Filter):
    """Drops third-party ERROR records that carry a traceback (Orbax logs each failed async
    save with one; gan_zoo reports the failure itself in one line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and "orbax" in record.pathname)


def quiet_third_party(level: int = logging.WARNING) -> None:
    """Third-party Python loggers at `level`; TensorFlow's C++ INFO lines off (before TF is
    imported; an explicit TF_CPP_MIN_LOG_LEVEL wins)."""
    for name in THIRD_PARTY_QUIET:
        logging.getLogger(name).setLevel(level)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


def drop_closed_loop_noise() -> None:
    """Turns the "Event loop is closed" errors of a failed Orbax save into one log line.

    When a save fails, Orbax closes its asyncio loop while TensorStore writes are still pending;
    each finishing write then reports RuntimeError('Event loop is closed') through
    sys.unraisablehook (a bare traceback, hundreds of them). Other unraisable errors pass on.
    """
    previous, lock, warned = sys.unraisablehook, threading.Lock(), False

    def hook(unraisable) -> None:
        nonlocal warned
        exc = unraisable.exc_value
        if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
            with lock:  # the writes finish on several threads at once: one line, not one each
                first, warned = not warned, True
            if first:
                logging.getLogger("gan_zoo").warning(
                    "dropping 'Event loop is closed' errors of writes pending when a save "
                    "failed (--verbosity=0 shows them)")
            return
        previous(unraisable)
    sys.unraisablehook = hook
