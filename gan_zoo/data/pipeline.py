"""Prefetch host-local batches to the devices as global, `data`-sharded jax.Arrays."""

import logging
import queue
import threading
import time
from typing import Iterator

import jax

log = logging.getLogger(__name__)

_END = object()  # the worker's "host stream exhausted" marker
CLOSE_TIMEOUT_S = 30.0  # how long closing waits for a worker stuck in the host stream


def prefetch_to_devices(host_batches: Iterator[dict], sharding, size: int = 2) -> Iterator[dict]:
    """Turns each host-local batch into a global jax.Array with `sharding` in a background
    thread, keeping `size` batches in flight. Exceptions in the thread are re-raised here; a
    finite host stream ends this one. Closing waits at most CLOSE_TIMEOUT_S for the worker (a
    read that hangs, e.g. on a network filesystem, does not keep the process from exiting: the
    thread is a daemon)."""
    q: queue.Queue = queue.Queue(maxsize=max(size, 1))
    stop = threading.Event()

    def to_global(x):
        return jax.make_array_from_process_local_data(sharding, x)

    def put(item) -> bool:
        """Blocks until queued or stopped; False when stopped."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def worker():
        try:
            for batch in host_batches:
                if not put(jax.tree.map(to_global, batch)):
                    return
            put(_END)
        except Exception as e:  # noqa: BLE001 (handed to the consumer)
            put(e)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        while thread.is_alive() and time.monotonic() < deadline:
            try:  # unblock the worker, then let it finish its current batch
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.1)
        if thread.is_alive():
            log.warning("prefetch: the data thread did not stop within %.0f s; leaving it "
                        "(daemon) behind", CLOSE_TIMEOUT_S)
