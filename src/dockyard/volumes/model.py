"""A volume's record and the rules on names, as dockerd words them."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

LOCAL_DRIVER = "local"
# dockerd 23+ labels the volumes it creates for a container's anonymous mounts with this
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
# dockerd's RestrictedNameChars followed by "+": a volume name has at least two characters
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


class VolumeError(Exception):
    """A user-facing volume error; `status` is the HTTP status the API answers with."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


def validate_name(name: str) -> None:
    """The local driver's rule (the message names what a relative `-v site/x:/x` was taken for)."""
    if not _NAME.fullmatch(name):
        raise VolumeError(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use '
            "absolute path",
            400,
        )


@dataclass
class Volume:
    name: str
    mountpoint: str  # the host directory containers bind: <root>/<name>/_data
    driver: str = LOCAL_DRIVER
    created_at: str = ""  # RFC 3339 to the second, as dockerd shows it
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)  # the local driver's type, device, o
    anonymous: bool = False  # made for a container's mount without a source (`-v /data`, VOLUME)

    def to_api(self) -> dict[str, Any]:
        """The body of GET /volumes/{name}: null, not {}, where there are no labels or options."""
        return {
            "CreatedAt": self.created_at,
            "Driver": self.driver,
            "Labels": self.labels or None,
            "Mountpoint": self.mountpoint,
            "Name": self.name,
            "Options": self.options or None,
            "Scope": "local",
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Volume:
        keys = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in keys})
