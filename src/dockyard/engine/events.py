"""The daemon's event bus: what /events streams (container, image, network, volume, daemon events)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

# How many past events a new subscriber with `since` can still see. A `run --rm` makes about 7 (create,
# network connect, start, die, network disconnect, destroy...): 4096 keeps the last few hundred runs.
HISTORY_SIZE = 4096


@dataclass
class Event:
    type: str  # container, image, network, volume, daemon
    action: str  # create, start, die, pull, tag, ...
    actor_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    time_nano: int = field(default_factory=time.time_ns)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "Type": self.type,
            "Action": self.action,
            "Actor": {"ID": self.actor_id, "Attributes": self.attributes},
            "scope": "local",
            "time": self.time_nano // 1_000_000_000,
            "timeNano": self.time_nano,
        }
        # The legacy top-level fields older clients still read.
        if self.type in ("container", "image"):
            body["status"] = self.action
            body["id"] = self.actor_id
            if "image" in self.attributes:
                body["from"] = self.attributes["image"]
        return body


class EventBus:
    def __init__(self) -> None:
        self._history: deque[Event] = deque(maxlen=HISTORY_SIZE)
        self._subscribers: set[asyncio.Queue[Event]] = set()

    def publish(self, event: Event) -> None:
        self._history.append(event)
        for queue in self._subscribers:
            queue.put_nowait(event)

    def emit(self, type_: str, action: str, actor_id: str, **attributes: str) -> None:
        self.publish(Event(type_, action, actor_id, dict(attributes)))

    def subscribe(self) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self._subscribers.discard(queue)

    def history(self, since_nano: int) -> list[Event]:
        return [e for e in self._history if e.time_nano >= since_nano]

    @property
    def listeners(self) -> int:
        return len(self._subscribers)
