"""The create body's HostConfig as dockerd 20.10's decoder and create take it, beside runtime/spec's checks:

- keys matched case-insensitively (docker-py sends `CPURealtimePeriod`), Go's type errors for the resource
  fields (`json: cannot unmarshal number -5 into Go struct field ContainerConfigWrapper.HostConfig.BlkioWeight
  of type uint16`);
- `Runtime` at the top of the body (where docker-py's `create_container(runtime=...)` puts it) when the
  HostConfig names none: dockerd drops it and runs its default, runc, which is what the caller asked for;
  Dockyard's default is its own runtime, so the request is honoured instead (the HostConfig's wins);
- the real-time fields and the block I/O weight (resources.check_create: refused or dropped with
  dockerd's words where the host cannot apply them);
- the log driver (logs/options.merge_and_verify: the daemon's default filled in, unknown drivers and
  options refused with dockerd's 400).
"""

from __future__ import annotations

from typing import Any

from ..logs.options import LogConfigError, merge_and_verify
from .resources import (
    HOST_CONFIG_KEYS,
    RESOURCE_TYPES,
    ResourceError,
    canonical_keys,
    check_create,
    check_types,
    sysinfo,
)

__all__ = ["CreateOptionError", "decode_host_config", "log_config"]


class CreateOptionError(ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def decode_host_config(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the HostConfig to store, warnings); CreateOptionError for what dockerd refuses."""
    raw = body.get("HostConfig") or {}
    if not isinstance(raw, dict):
        return {}, []  # the request layer's business; nothing to read here
    hc = canonical_keys(raw, HOST_CONFIG_KEYS)
    try:
        check_types(hc, "ContainerConfigWrapper.HostConfig", RESOURCE_TYPES, 400)
        warnings = check_create(hc, sysinfo())
    except ResourceError as e:
        raise CreateOptionError(str(e), e.status) from None
    top = body.get("Runtime")
    if not hc.get("Runtime") and isinstance(top, str) and top:
        hc["Runtime"] = top
    return hc, warnings


def log_config(hc: dict[str, Any], default_type: str, default_opts: dict[str, str]) -> dict[str, Any]:
    try:
        return merge_and_verify(hc.get("LogConfig"), default_type, default_opts)
    except LogConfigError as e:
        raise CreateOptionError(str(e), e.status) from None
