"""The Daemon: the one place that wires the engine's services together and answers system questions."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import platform
import shutil
import threading
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import API_VERSION, MIN_API_VERSION, __version__
from ..containers.service import ContainerService
from ..distribution import RegistryClient, RegistryHosts
from ..distribution.pull import Puller
from ..distribution.push import Pusher
from ..images import ImageService
from ..linux.seccomp import kernel_supports_seccomp
from ..network import IpamError, NetworkError, NetworkService, parse_pools
from ..network.ipv6 import Ipv6Error
from ..network.ipv6 import parse_pools as ipv6_pools
from ..network.resolvconf import DnsSettings
from ..runtime.external import OCIRuntime
from ..volumes import VolumeService
from .config import DEFAULT_RUNTIME, ConfigError, DaemonConfig
from .events import EventBus
from .hostinfo import cgroup_version, host_info, runtime_version

log = logging.getLogger("dockyard.engine")

BUILD_TIME = "2026-11-28T00:00:00.000000000+00:00"


@dataclass
class RuntimeDescription:
    name: str
    path: str
    version: str = ""
    commit: str = ""
    runtime_args: list[str] = field(default_factory=list)


class Daemon:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.events = EventBus()
        self.id = self._load_or_create_id()
        self.runtimes = self._discover_runtimes()
        self.images = ImageService(Path(config.data_root) / "image", config.storage_driver)
        self.images.recover()
        self.registry = RegistryClient(
            RegistryHosts.from_config(config), max_attempts=config.max_download_attempts
        )
        self.puller = Puller(self.images, self.registry, config.max_concurrent_downloads)
        self.pusher = Pusher(self.images, self.registry, config.max_concurrent_uploads)
        self.volumes = VolumeService(Path(config.data_root) / "volumes", self.events)
        self.networks = self._network_service()
        self.containers = ContainerService(
            config.data_root,
            self.images,
            self.events,
            cgroup_version(),
            runtimes=self._oci_runtimes(),
            default_runtime=config.default_runtime,
            exec_root=config.exec_root,
            volumes=self.volumes,
            networks=self.networks,
        )
        self.containers.seccomp_profile = self._seccomp_profile()
        self.containers.log_defaults = (config.log_driver, dict(config.log_opts))
        self.containers.cpu_rt = (config.cpu_rt_period, config.cpu_rt_runtime)
        self.containers.recover()
        self.networks.recover({c.id for c in self.containers.store.all() if c.running})

    async def start(self) -> None:
        """In the event loop, before serving: watch the containers that still run."""
        self.volumes.loop = asyncio.get_running_loop()  # for volume events from worker threads
        await self.containers.start_monitors()

    async def close(self) -> None:
        # Dockyard's containers outlive the daemon (their shims hold them) unless daemon.json says
        # "live-restore": false, which asks for dockerd's default: stop them all before exiting.
        await self.containers.close(stop_containers=self.config.live_restore is False)
        await self.registry.close()
        self.networks.close()

    def disk_usage(self) -> dict[str, Any]:
        """`GET /system/df`, as dockerd answers it: images with their container counts and shared sizes,
        containers with their sizes, volumes with their usage, no build cache (the classic builder's cache
        is images)."""
        from ..linux.disk import directory_size

        layers_size, shared = self.images.layer_sharing()
        images = self.images.list_images(all_images=True)
        for image in images:
            image["Containers"] = len(self.containers.store.users_of_image(image["Id"]))
            image["SharedSize"] = shared.get(image["Id"], 0)
        containers = self.containers.list(all=True, size=True)
        volumes = []
        for volume in self.volumes.list():
            entry = volume.to_api()
            entry["UsageData"] = {
                "Size": directory_size(volume.mountpoint),
                "RefCount": len(self.volumes.users(volume.name)),
            }
            volumes.append(entry)
        return {
            "LayersSize": layers_size,
            "Images": images,
            "Containers": containers,
            "Volumes": volumes,
            "BuildCache": [],
        }

    # --- start-up ---------------------------------------------------------------------------------

    def _network_service(self) -> NetworkService:
        """The bridge networks: `--bridge`/`-b` and `--bip` name the default bridge and its subnet (a bridge
        of that name is made when missing), so several daemons each keep their own."""
        try:
            pools = parse_pools([asdict(p) for p in self.config.default_address_pools])
            service = NetworkService(
                self.config.data_root,
                self.config.exec_root,
                bridge=self.config.bridge,
                bip=self.config.bip,
                pools=pools or None,
                mtu=int(self.config.extra.get("mtu") or 0),
                firewall_rules=self.config.extra.get("iptables", True) is not False,
                ip_forward=self.config.extra.get("ip-forward", True) is not False,
                default_ipv6=(
                    self.config.extra.get("ipv6") is True,
                    str(self.config.extra.get("fixed-cidr-v6") or ""),
                ),
                pools6=ipv6_pools([asdict(p) for p in self.config.default_address_pools]),
            )
            service.dns.settings = DnsSettings.from_config(self.config.extra)  # daemon.json's dns*
            service.setup()
        except (IpamError, Ipv6Error, NetworkError, OSError, ValueError) as e:
            raise ConfigError(f"networking: {e}") from None
        return service

    def _seccomp_profile(self) -> str:
        """daemon.json's seccomp-profile, read once at start as dockerd does: the file's JSON, or
        "unconfined", or "" for the built-in profile."""
        profile = self.config.seccomp_profile
        if profile in ("", "builtin", "unconfined"):
            return "unconfined" if profile == "unconfined" else ""
        try:
            with open(profile) as f:
                return f.read()
        except OSError as e:
            raise ConfigError(f"opening seccomp profile ({profile}) failed: {e.strerror}") from None

    def _load_or_create_id(self) -> str:
        path = os.path.join(self.config.data_root, "engine-id")
        try:
            with open(path) as f:
                existing = f.read().strip()
            if existing:
                return existing
        except FileNotFoundError:
            pass
        new_id = str(uuid.uuid4())
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(new_id + "\n")
        os.replace(tmp, path)
        return new_id

    def _discover_runtimes(self) -> dict[str, RuntimeDescription]:
        runtimes = {DEFAULT_RUNTIME: RuntimeDescription(DEFAULT_RUNTIME, "dockyard-runtime", __version__)}
        configured = {name: (rc.path, rc.runtime_args) for name, rc in self.config.runtimes.items()}
        for name in ("runc", "crun"):
            configured.setdefault(name, (name, []))
        for name, (path, args) in configured.items():
            found = runtime_version(path)
            if found is None:
                if name in self.config.runtimes:
                    log.warning("runtime %s: %s not found", name, path)
                continue
            runtimes[name] = RuntimeDescription(name, path, found[0], found[1], args)
        return runtimes

    def _oci_runtimes(self) -> dict[str, OCIRuntime]:
        """What containers can run on: the built-in runtime, and each external one found (by full path)."""
        return {
            name: OCIRuntime(name)
            if name == DEFAULT_RUNTIME
            else OCIRuntime(name, shutil.which(rt.path) or rt.path, tuple(rt.runtime_args))
            for name, rt in self.runtimes.items()
        }

    # --- system endpoints ---------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        host = host_info()
        engine_details = {
            "ApiVersion": API_VERSION,
            "Arch": host.arch,
            "BuildTime": BUILD_TIME,
            "Experimental": str(self.config.experimental).lower(),
            "GitCommit": "",
            "GoVersion": f"python{platform.python_version()}",
            "KernelVersion": host.kernel_version,
            "MinAPIVersion": MIN_API_VERSION,
            "Os": "linux",
        }
        components: list[dict[str, Any]] = [
            {"Name": "Engine", "Version": __version__, "Details": engine_details}
        ]
        for rt in self.runtimes.values():
            components.append({"Name": rt.name, "Version": rt.version, "Details": {"GitCommit": rt.commit}})
        return {
            "Platform": {"Name": "Dockyard Engine"},
            "Components": components,
            "Version": __version__,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": engine_details["GoVersion"],
            "Os": "linux",
            "Arch": host.arch,
            "KernelVersion": host.kernel_version,
            "BuildTime": BUILD_TIME,
        }

    def info(self) -> dict[str, Any]:
        host = host_info()
        cfg = self.config
        secure_index = not any(r in ("docker.io", "index.docker.io") for r in cfg.insecure_registries)
        runtime_commit = self.runtimes.get("runc")
        counts = self.containers.counts()
        return {
            "ID": self.id,
            "Containers": counts[0],
            "ContainersRunning": counts[1],
            "ContainersPaused": counts[2],
            "ContainersStopped": counts[3],
            "Images": self.images.counts(),
            "Driver": self.images.driver,
            "DriverStatus": [["Backing Filesystem", _backing_filesystem(cfg.data_root)]],
            "Plugins": {
                "Volume": ["local"],
                "Network": ["bridge", "host", "none"],
                "Authorization": None,
                "Log": ["json-file"],
            },
            "MemoryLimit": host.memory_limit,
            "SwapLimit": False,
            "KernelMemory": False,
            "KernelMemoryTCP": False,
            "CpuCfsPeriod": True,
            "CpuCfsQuota": True,
            "CPUShares": True,
            "CPUSet": True,
            "PidsLimit": host.pids_limit,
            "IPv4Forwarding": host.ipv4_forwarding,
            "BridgeNfIptables": False,
            "BridgeNfIp6tables": False,
            "Debug": cfg.log_level == "debug",
            "NFd": _count_fds(),
            "OomKillDisable": False,
            "NGoroutines": threading.active_count(),
            "SystemTime": datetime.datetime.now(datetime.UTC).astimezone().isoformat(),
            "LoggingDriver": cfg.log_driver,
            "CgroupDriver": host.cgroup_driver,
            "CgroupVersion": host.cgroup_version,
            "NEventsListener": self.events.listeners,
            "KernelVersion": host.kernel_version,
            "OperatingSystem": host.operating_system,
            "OSVersion": host.os_version,
            "OSType": "linux",
            "Architecture": host.machine,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "AllowNondistributableArtifactsCIDRs": [],
                "AllowNondistributableArtifactsHostnames": [],
                "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                "IndexConfigs": {
                    "docker.io": {
                        "Name": "docker.io",
                        "Mirrors": [m + "/" for m in cfg.registry_mirrors],
                        "Secure": secure_index,
                        "Official": True,
                    },
                    **{
                        r: {"Name": r, "Mirrors": [], "Secure": False, "Official": False}
                        for r in cfg.insecure_registries
                    },
                },
                "Mirrors": [m + "/" for m in cfg.registry_mirrors],
            },
            "NCPU": host.ncpu,
            "MemTotal": host.mem_total,
            "GenericResources": None,
            "DockerRootDir": cfg.data_root,
            "HttpProxy": os.environ.get("HTTP_PROXY", os.environ.get("http_proxy", "")),
            "HttpsProxy": os.environ.get("HTTPS_PROXY", os.environ.get("https_proxy", "")),
            "NoProxy": os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")),
            "Name": host.hostname,
            "Labels": list(cfg.labels),
            "ExperimentalBuild": cfg.experimental,
            "ServerVersion": __version__,
            "Runtimes": {
                name: {"path": rt.path, **({"runtimeArgs": rt.runtime_args} if rt.runtime_args else {})}
                for name, rt in self.runtimes.items()
            },
            "DefaultRuntime": cfg.default_runtime,
            "Swarm": {
                "NodeID": "",
                "NodeAddr": "",
                "LocalNodeState": "inactive",
                "ControlAvailable": False,
                "Error": "",
                "RemoteManagers": None,
            },
            "LiveRestoreEnabled": cfg.live_restore is not False,  # on unless daemon.json says false
            "Isolation": "",
            "InitBinary": "",
            "ContainerdCommit": {"ID": "", "Expected": ""},
            "RuncCommit": {
                "ID": runtime_commit.commit if runtime_commit else "",
                "Expected": runtime_commit.commit if runtime_commit else "",
            },
            "InitCommit": {"ID": "", "Expected": ""},
            "SecurityOptions": self._security_options(host.cgroup_version),
            "Warnings": self._warnings(),
        }

    def _security_options(self, cgroup_version: str) -> list[str]:
        options = []
        if kernel_supports_seccomp():
            # dockerd 20.10 names the daemon's profile: "default" for the built-in one, else the path
            options.append(f"name=seccomp,profile={self.config.seccomp_profile or 'default'}")
        if cgroup_version == "2":
            options.append("name=cgroupns")
        return options

    def _warnings(self) -> list[str]:
        host = host_info()
        warnings = []
        if not host.memory_limit:
            warnings.append("WARNING: No memory limit support")
        if not host.ipv4_forwarding:
            warnings.append("WARNING: IPv4 forwarding is disabled")
        return warnings


def _count_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def _backing_filesystem(path: str) -> str:
    best, fstype = "", "unknown"
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and path.startswith(parts[1]) and len(parts[1]) >= len(best):
                    best, fstype = parts[1], parts[2]
    except OSError:
        pass
    return {"ext4": "extfs", "ext3": "extfs", "ext2": "extfs"}.get(fstype, fstype)
