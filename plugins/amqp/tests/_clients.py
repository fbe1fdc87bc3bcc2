"""Runs in spawned processes: one client that reports its reply address, then its results."""

from __future__ import annotations

from typing import Any, cast

import resultstore
from resultstore_amqp.backend import AmqpBackend

PER_CLIENT = 25
CLIENTS = 20
WAIT = 60.0


def own_results(url: str, index: int, addresses: Any, go: Any, box: Any) -> None:
    """Wait for this client's results; report them, how many it holds, and foreign ones seen."""
    try:
        store = resultstore.connect(url)
    except BaseException as exc:
        addresses.put((index, None))
        box.put((index, repr(exc), -1, []))
        return
    try:
        backend = cast(AmqpBackend, store.backend)
        addresses.put((index, backend.reply_address()))
        go.wait(WAIT)
        mine = [f"client{index}-task{n}" for n in range(PER_CLIENT)]
        values = store.group_result(f"g{index}", mine).get(timeout=WAIT)
        held, _ = backend.reader.buffered()
        foreign = [f"client{(index + 1) % CLIENTS}-task{n}" for n in range(PER_CLIENT)]
        box.put((index, values, held, [t for t in foreign if store.get(t) is not None]))
    except BaseException as exc:
        box.put((index, repr(exc), -1, []))
    finally:
        store.close()
