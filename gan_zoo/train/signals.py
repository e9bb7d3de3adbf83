"""SIGTERM / SIGINT during training: save a checkpoint first, then stop; a second signal exits.

The first signal sets a flag that the loop reads at the top of each step, before any other work,
so the checkpoint is written before sample grids or evaluations (which are skipped when
stopping). A second signal exits at once (status 128 + signal number), whatever the main thread is
doing: Orbax saves are atomic, so an interrupted save leaves the previous checkpoint intact.

Why a thread: Python runs signal handlers in the main thread between bytecodes, so while the main
thread is inside a long C call (an XLA compile, a device wait) the handler waits, and two signals
that arrive meanwhile run it once. The C-level handler also writes one byte per signal to the
wakeup fd (`signal.set_wakeup_fd`); a daemon thread reads those bytes, so every signal is counted
when it arrives.
"""

import logging
import os
import signal
import sys
import threading
import time

import jax
import jax.numpy as jnp

log = logging.getLogger("gan_zoo.train")

HANDLED = (signal.SIGTERM, signal.SIGINT)
_FALLBACK_WAIT_S = 0.5  # how long the Python handler waits for the thread to count a signal


def _flush_logs() -> None:
    for h in logging.getLogger().handlers:
        h.flush()
    sys.stdout.flush()
    sys.stderr.flush()


class StopSignal:
    """Counts SIGTERM/SIGINT; `received` after the first, exit_fn(128 + signum) at the second.

    On several hosts the hosts must stop at the same step (saving is collective), so
    `stop(step)` agrees: every SYNC_STEPS steps all hosts all-gather their flags and stop if any
    got a signal. Installed only from the main thread (elsewhere it does nothing).
    """

    SYNC_STEPS = 10

    def __init__(self, exit_fn=os._exit):
        self.received = False
        self.count = 0  # signals counted so far
        self.name = "stop signal"  # the first signal's name (another host's: this default)
        self.multihost = jax.process_count() > 1
        self._exit, self._lock, self._handled = exit_fn, threading.Lock(), 0
        self._old, self._old_fd, self._pipe, self._thread = {}, None, None, None
        if threading.current_thread() is not threading.main_thread():
            return
        self._pipe = os.pipe()
        os.set_blocking(self._pipe[1], False)  # the C handler must never block
        self._old_fd = signal.set_wakeup_fd(self._pipe[1], warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._watch, name="stop_signal", daemon=True)
        self._thread.start()
        self._old = {s: signal.signal(s, self._handle) for s in HANDLED}

    def _watch(self) -> None:
        """The thread: one byte per signal from the wakeup fd (EOF when restored)."""
        while data := os.read(self._pipe[0], 64):
            for signum in data:
                if self._old_fd is not None and self._old_fd >= 0:  # keep its owner informed
                    try:
                        os.write(self._old_fd, bytes([signum]))
                    except OSError:
                        pass
                if signum in HANDLED:
                    self._on_signal(signum)

    def _handle(self, signum, frame) -> None:
        """The Python-level handler: counting is the thread's; this only covers a wakeup fd
        taken over by someone else (then the thread never sees the signal)."""
        del frame
        self._handled += 1
        deadline = time.monotonic() + _FALLBACK_WAIT_S
        while self.count < self._handled and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.count < self._handled:
            self._on_signal(signum)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        with self._lock:
            self.count += 1
            first = self.count == 1
            self.received = True
        if first:
            self.name = name
            log.warning("%s: saving a checkpoint, then stopping (send it again to exit at once)",
                        name)
            return
        log.error("%s again: exiting now; the newest complete checkpoint is kept", name)
        _flush_logs()
        self._exit(128 + signum)

    def stop(self, done: int) -> bool:
        """Whether the loop should save and stop at step `done` (same answer on every host)."""
        if not self.multihost:
            return self.received
        if done % self.SYNC_STEPS:
            return False
        from jax.experimental import multihost_utils  # noqa: PLC0415

        flags = multihost_utils.process_allgather(jnp.asarray(self.received, jnp.int32))
        return bool(jnp.any(flags))

    def restore(self) -> None:
        """Puts back the previous handlers and wakeup fd; ends the thread."""
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}
        if self._pipe is None:
            return
        signal.set_wakeup_fd(self._old_fd if self._old_fd is not None else -1)
        os.close(self._pipe[1])  # the thread reads EOF and returns
        self._thread.join(timeout=1.0)
        os.close(self._pipe[0])
        self._pipe = None
