"""Failed checkpoint saves reported at once, in one line (issue #19 item 6).

Orbax finishes an async save in a background thread and keeps its error until the next save or
wait, so a full disk used to show up one checkpoint interval later, inside a long traceback. A
watcher thread waits for each save as soon as it starts: on failure it logs one line (the step,
the OS error, the last good checkpoint) and keeps the error; the loop calls check() at the top of
every step, and the run stops there. The failed save's temporary folder is not a checkpoint, so
the last good one stays the newest.
"""

import logging
import threading

log = logging.getLogger("gan_zoo.train")


class SaveFailed(RuntimeError):
    """A checkpoint save failed (the message is one line: step, error, last good checkpoint)."""


def innermost(e: BaseException) -> str:
    """'OSError: [Errno 28] No space left on device': the root cause of a chained error."""
    while e.__cause__ is not None or (e.__context__ is not None and not e.__suppress_context__):
        e = e.__cause__ or e.__context__
    text = " ".join(str(e).split()).split(" See full TensorStore details")[0]
    if len(text) > 300:  # TensorStore puts the OS error ("No space left ...") at the end
        text = f"{text[:140]} ... {text[-150:]}"
    return f"{type(e).__name__}: {text}"


class SaveWatcher:
    """Waits for each save of `manager` (an ocp.CheckpointManager) in a daemon thread."""

    def __init__(self, manager, directory: str):
        self._manager, self._directory = manager, directory
        self._thread, self.error, self._raised = None, None, False

    def failed(self, step: int, e: BaseException) -> SaveFailed:
        """Records and logs the failure of the save at `step` (once)."""
        if self.error is None:
            try:
                good = self._manager.latest_step()
            except Exception:  # noqa: BLE001 (the report must not fail)
                good = "unknown"
            kept = (f"the last good checkpoint (step {good}) in {self._directory} is kept"
                    if good is not None else f"no checkpoint in {self._directory} yet")
            self.error = SaveFailed(f"checkpoint save at step {step} failed: {innermost(e)}; "
                                    f"{kept}")
            self.error.__cause__ = e
            log.error("%s", self.error)
        return self.error

    def started(self, step: int) -> None:
        """Called right after manager.save(step) returns."""
        self._thread = threading.Thread(target=self._wait, args=(step,), daemon=True,
                                        name=f"checkpoint_watch_{step}")
        self._thread.start()

    def _wait(self, step: int) -> None:
        try:
            self._manager.wait_until_finished()
        except Exception as e:  # noqa: BLE001 (reported, then raised by check())
            self.failed(step, e)

    def check(self) -> None:
        """Raises SaveFailed once if a save has failed (does not block)."""
        if self.error is not None and not self._raised:
            self._raised = True
            raise self.error

    def join(self, check: bool = True) -> None:
        """Waits for the pending save's watcher, then check() (unless check=False)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if check:
            self.check()
