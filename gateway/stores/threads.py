"""Running a blocking store call off the event loop, in a thread that cannot hold up the exit.

``asyncio.to_thread`` uses the loop's default executor, whose threads are joined when the loop
closes and again at interpreter exit: one store call stuck for good (a hung network file
system, a peer that never answers) would keep the process alive after SIGTERM. A store call
runs in a daemon thread of its own instead; a caller that stops waiting (a cancelled refresh
at shutdown) leaves it behind, and the process exits without it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def call_off_loop(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a daemon thread; its result or its exception here."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return  # the caller stopped waiting
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = function(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting caller
            error = exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop has closed: the process is on its way out

    threading.Thread(target=run, name=f"store-{getattr(function, '__name__', 'call')}", daemon=True).start()
    return await future
