"""Prefetch host-local batches to the devices as global, `data`-sharded jax.Arrays."""

import queue
import threading
from typing import Iterator

import jax


def prefetch_to_devices(host_batches: Iterator[dict], sharding, size: int = 2) -> Iterator[dict]:
    """Turns each host-local batch into a global jax.Array with `sharding` in a background
    thread, keeping `size` batches in flight. Exceptions in the thread are re-raised here."""
    q: queue.Queue = queue.Queue(maxsize=max(size, 1))
    stop = threading.Event()

    def to_global(x):
        return jax.make_array_from_process_local_data(sharding, x)

    def worker():
        try:
            for batch in host_batches:
                item = jax.tree.map(to_global, batch)
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except Exception as e:  # noqa: BLE001 (handed to the consumer)
            q.put(e)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock the worker, then let it finish its current batch
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.1)
