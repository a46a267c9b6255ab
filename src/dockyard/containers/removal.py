"""Who removes a container. `rm -f` of a running `--rm` container races the auto-removal its exit starts
(both unmounted and deleted the rootfs: `unable to remove filesystem ... No such file or directory:
'merged'`). As dockerd's RemovalInProgress: the first to ask owns the removal (`rm` claims it before it
kills, the exit monitor after the exit), and whoever asks meanwhile does not remove too: the auto-removal
leaves it to the owner, an `rm` waits for the owner and shares its outcome (success, or the owner's
error). The owner alone emits `destroy`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["Removals"]


class Removals:
    def __init__(self) -> None:
        self._owned: dict[str, asyncio.Future[None]] = {}

    def in_progress(self, container_id: str) -> bool:
        return container_id in self._owned

    def claim(self, container_id: str) -> bool:
        """Take the removal; False when another caller owns it."""
        if container_id in self._owned:
            return False
        self._owned[container_id] = asyncio.get_running_loop().create_future()
        return True

    async def wait(self, container_id: str) -> None:
        """Until the owner is done; raises the owner's error (nothing when none is in progress)."""
        fut = self._owned.get(container_id)
        if fut is not None:
            await asyncio.shield(fut)

    def release(self, container_id: str, error: BaseException | None = None) -> None:
        """The owner is done (or gave up, with `error`): waiters get its outcome."""
        fut = self._owned.pop(container_id, None)
        if fut is None or fut.done():
            return
        if error is None:
            fut.set_result(None)
        elif isinstance(error, Exception):
            fut.set_exception(error)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody waits
        else:
            fut.cancel()

    async def run(self, container_id: str, remove: Callable[[], Any], done: Callable[[], None]) -> None:
        """As the owner (after `claim`): `remove` in a thread, then `done` (the event), then release."""
        try:
            await asyncio.to_thread(remove)
        except BaseException as e:
            self.release(container_id, e)
            raise
        done()
        self.release(container_id)
