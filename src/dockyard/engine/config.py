"""Daemon configuration: defaults, then daemon.json, then command-line flags (flags win).

Keys are named as in dockerd's daemon.json so a Docker user's file works unchanged. Keys dockerd knows
but Dockyard does not act on yet are accepted and kept; unknown keys are an error, as in dockerd. Dockyard's
own keys (`DOCKYARD_KEYS`): `detach-keys`, the default detach keys of attach and exec.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..detachkeys import to_bytes

DEFAULT_HOST = "unix:///var/run/dockyard.sock"
DEFAULT_DATA_ROOT = "/var/lib/dockyard"
DEFAULT_EXEC_ROOT = "/run/dockyard"
DEFAULT_CONFIG_FILE = "/etc/dockyard/daemon.json"
DEFAULT_PIDFILE = "/var/run/dockyard.pid"
DEFAULT_RUNTIME = "dockyard"
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")

# Every directive dockerd's daemon.json accepts (Docker 20.10-24). Those not in FIELD_BY_KEY are
# accepted for compatibility and kept in DaemonConfig.extra.
KNOWN_DOCKERD_KEYS = frozenset(
    """
    allow-nondistributable-artifacts api-cors-header authorization-plugins bip bip6 bridge builder
    cpu-rt-period cpu-rt-runtime
    cgroup-parent cluster-advertise cluster-store cluster-store-opts containerd containerd-namespace
    containerd-plugin-namespace cri-containerd data-root debug default-address-pools
    default-cgroupns-mode default-gateway default-gateway-v6 default-ipc-mode default-network-opts
    default-runtime default-shm-size default-ulimits dns dns-opts dns-search exec-opts exec-root
    experimental features fixed-cidr fixed-cidr-v6 group host-gateway-ip hosts icc init init-path
    insecure-registries ip ip-forward ip-masq ip6tables iptables ipv6 labels live-restore log-driver
    log-format log-level log-opts max-concurrent-downloads max-concurrent-uploads
    max-download-attempts metrics-addr mtu no-new-privileges node-generic-resources
    oom-score-adjust pidfile proxies raw-logs registry-mirrors runtimes seccomp-profile
    selinux-enabled shutdown-timeout storage-driver storage-opts swarm-default-advertise-addr tls
    tlscacert tlscert tlskey tlsverify userland-proxy userland-proxy-path userns-remap
    """.split()
)
# Dockyard's own directives, beside dockerd's
DOCKYARD_KEYS = frozenset({"detach-keys"})


# daemon.json directives for a daemon that changes nothing of the host's network: no default bridge, no
# nftables table, no ip_forward (in-process daemons of unit tests; published ports are refused)
NO_HOST_NETWORK: dict[str, Any] = {"bridge": "none", "iptables": False, "ip-forward": False}


class ConfigError(Exception):
    """A configuration problem, worded as one line for the user."""


@dataclass
class RuntimeConfig:
    path: str
    runtime_args: list[str] = field(default_factory=list)


@dataclass
class AddressPool:
    base: str
    size: int


@dataclass
class DaemonConfig:
    hosts: list[str] = field(default_factory=lambda: [DEFAULT_HOST])
    data_root: str = DEFAULT_DATA_ROOT
    exec_root: str = DEFAULT_EXEC_ROOT
    pidfile: str = DEFAULT_PIDFILE
    log_level: str = "info"
    debug: bool = False
    group: str = "dockyard"
    registry_mirrors: list[str] = field(default_factory=list)
    insecure_registries: list[str] = field(default_factory=list)
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    max_download_attempts: int = 5
    log_driver: str = "json-file"
    log_opts: dict[str, str] = field(default_factory=dict)
    default_runtime: str = DEFAULT_RUNTIME
    runtimes: dict[str, RuntimeConfig] = field(default_factory=dict)
    default_address_pools: list[AddressPool] = field(default_factory=list)
    live_restore: bool | None = None  # None (not set): containers outlive the daemon; False: stopped at exit
    bridge: str = ""
    bip: str = ""
    labels: list[str] = field(default_factory=list)
    experimental: bool = False
    storage_driver: str = ""
    shutdown_timeout: int = 15
    seccomp_profile: str = ""  # "" = the built-in profile, "unconfined", or a profile file's path
    cpu_rt_period: int = 0  # the containers' parent cgroup's real-time budget (cgroup v1), microseconds
    cpu_rt_runtime: int = 0
    detach_keys: str = ""  # the daemon's default for attach and exec ("" = ctrl-p,ctrl-q)
    config_file: str = DEFAULT_CONFIG_FILE
    # Known dockerd directives that Dockyard does not act on (yet), kept as given.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def socket_path(self) -> str:
        return unix_socket_path(self.hosts[0])


def unix_socket_path(host: str) -> str:
    if not host.startswith("unix://"):
        raise ConfigError(f"unsupported host {host!r}: only unix:// sockets are supported")
    path = host[len("unix://") :]
    if not path.startswith("/"):
        raise ConfigError(f"invalid host {host!r}: the socket path must be absolute")
    return path


# --- validation of individual values ---------------------------------------------------------------


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f'"{key}" must be a string')
    return value


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f'"{key}" must be true or false')
    return value


def _positive_int(key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f'"{key}" must be a positive integer')
    return value


def _non_negative_int(key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f'"{key}" must be a non-negative integer')
    return value


def _str_list(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f'"{key}" must be a list of strings')
    return list(value)


def _str_map(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f'"{key}" must be an object of string values')
    return dict(value)


def _mirrors(key: str, value: Any) -> list[str]:
    mirrors = _str_list(key, value)
    for m in mirrors:
        if not m.startswith(("http://", "https://")):
            raise ValueError(f'invalid mirror in "{key}": "{m}" must start with http:// or https://')
    return [m.rstrip("/") for m in mirrors]


def _log_level(key: str, value: Any) -> str:
    level = _str(key, value)
    if level not in LOG_LEVELS:
        raise ValueError(f'"{key}" must be one of {", ".join(LOG_LEVELS)}, not "{level}"')
    return level


def _runtimes(key: str, value: Any) -> dict[str, RuntimeConfig]:
    if not isinstance(value, dict):
        raise ValueError(f'"{key}" must be an object')
    out: dict[str, RuntimeConfig] = {}
    for name, spec in value.items():
        if name == DEFAULT_RUNTIME:
            raise ValueError(f"runtime name '{name}' is reserved")
        if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
            raise ValueError(f'runtime "{name}" in "{key}" needs a "path"')
        args = spec.get("runtimeArgs", [])
        out[name] = RuntimeConfig(path=spec["path"], runtime_args=_str_list(f"{name}.runtimeArgs", args))
    return out


def _added_runtimes(key: str, value: Any) -> dict[str, RuntimeConfig]:
    """--add-runtime name=path, as dockerd's flag (repeatable)."""
    specs: dict[str, Any] = {}
    for item in _str_list(key, value):
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f'"{item}" is not a runtime: use name=path')
        specs[name] = {"path": path}
    return _runtimes(key, specs)


def _detach_keys(key: str, value: Any) -> str:
    spec = _str(key, value)
    try:
        to_bytes(spec)
    except ValueError as e:
        raise ValueError(f'invalid "{key}" ({spec}): {e}') from None
    return spec


def _pools(key: str, value: Any) -> list[AddressPool]:
    if not isinstance(value, list):
        raise ValueError(f'"{key}" must be a list of {{"base": CIDR, "size": N}}')
    pools = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("base"), str):
            raise ValueError(f'each entry of "{key}" needs a "base" CIDR')
        size = item.get("size", 24)
        longest = 128 if ":" in item["base"] else 32  # an IPv6 pool (network/ipv6.py)
        if not isinstance(size, int) or not 1 <= size <= longest:
            raise ValueError(f'"size" in "{key}" must be a prefix length between 1 and {longest}')
        pools.append(AddressPool(base=item["base"], size=size))
    return pools


# daemon.json key -> (DaemonConfig field, validator)
FIELD_BY_KEY: dict[str, tuple[str, Any]] = {
    "hosts": ("hosts", _str_list),
    "data-root": ("data_root", _str),
    "exec-root": ("exec_root", _str),
    "pidfile": ("pidfile", _str),
    "log-level": ("log_level", _log_level),
    "debug": ("debug", _bool),
    "group": ("group", _str),
    "registry-mirrors": ("registry_mirrors", _mirrors),
    "insecure-registries": ("insecure_registries", _str_list),
    "max-concurrent-downloads": ("max_concurrent_downloads", _positive_int),
    "max-concurrent-uploads": ("max_concurrent_uploads", _positive_int),
    "max-download-attempts": ("max_download_attempts", _positive_int),
    "log-driver": ("log_driver", _str),
    "log-opts": ("log_opts", _str_map),
    "default-runtime": ("default_runtime", _str),
    "runtimes": ("runtimes", _runtimes),
    "default-address-pools": ("default_address_pools", _pools),
    "live-restore": ("live_restore", _bool),
    "bridge": ("bridge", _str),
    "bip": ("bip", _str),
    "labels": ("labels", _str_list),
    "experimental": ("experimental", _bool),
    "storage-driver": ("storage_driver", _str),
    "shutdown-timeout": ("shutdown_timeout", _positive_int),
    "seccomp-profile": ("seccomp_profile", _str),
    "cpu-rt-period": ("cpu_rt_period", _non_negative_int),
    "cpu-rt-runtime": ("cpu_rt_runtime", _non_negative_int),
    "detach-keys": ("detach_keys", _detach_keys),
}


def read_config_file(path: str, required: bool) -> dict[str, Any]:
    """The file's directives, validated by name. A missing default file is simply no file."""
    prefix = f"unable to configure the Dockyard daemon with file {path}"
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{prefix}: open {path}: no such file or directory") from None
        return {}
    except OSError as e:
        raise ConfigError(f"{prefix}: {e.strerror}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{prefix}: invalid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}: the file must hold a JSON object")
    unknown = sorted(k for k in data if k not in KNOWN_DOCKERD_KEYS and k not in DOCKYARD_KEYS)
    if unknown:
        raise ConfigError(
            f"{prefix}: the following directives don't match any configuration option: {', '.join(unknown)}"
        )
    return data


def build_config(file_values: dict[str, Any], flag_values: dict[str, Any], config_file: str) -> DaemonConfig:
    """Merge defaults, file directives and flags (flags given on the command line win)."""
    config = DaemonConfig(config_file=config_file)
    for key, value in file_values.items():
        if key not in FIELD_BY_KEY:
            config.extra[key] = value
            continue
        name, validate = FIELD_BY_KEY[key]
        try:
            setattr(config, name, validate(key, value))
        except ValueError as e:
            raise ConfigError(
                f"unable to configure the Dockyard daemon with file {config_file}: {e}"
            ) from None
    for key, value in flag_values.items():
        if value is None:
            continue
        if key == "add-runtime":  # adds to daemon.json's "runtimes" rather than replacing them
            try:
                config.runtimes = {**config.runtimes, **_added_runtimes(key, value)}
            except ValueError as e:
                raise ConfigError(f"invalid flag --{key}: {e}") from None
            continue
        name, validate = FIELD_BY_KEY[key]
        try:
            setattr(config, name, validate(key, value))
        except ValueError as e:
            raise ConfigError(f"invalid flag --{key}: {e}") from None
    if config.debug:
        config.log_level = "debug"
    if not config.hosts:
        config.hosts = [DEFAULT_HOST]
    for host in config.hosts:
        unix_socket_path(host)
    if config.default_runtime != DEFAULT_RUNTIME and config.default_runtime not in config.runtimes:
        if config.default_runtime not in ("runc", "crun"):
            raise ConfigError(f'default runtime "{config.default_runtime}" is not a configured runtime')
    config.data_root = os.path.abspath(config.data_root)
    config.exec_root = os.path.abspath(config.exec_root)
    return config
