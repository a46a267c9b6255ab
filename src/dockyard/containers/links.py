"""Legacy links (`--link name:alias`, `HostConfig.Links`) on the default bridge, as dockerd 20.10 keeps them.

At create (not on a user-defined network, where a link is an alias of the endpoint instead: see
`network/linkalias.py`), each link names a child container, found by name, ID or prefix (following
`container:` network modes), and is recorded in the parent as (alias, child ID, child name); dockerd's name
for it is `/parent/alias` (it follows a rename of the parent), inspect shows `HostConfig.Links` as
`/child:/parent/alias`, and the child's names in the container list include it. A link outlives its
child's removal (the start then fails, as dockerd's). At the parent's start on the default bridge every child
must be on the bridge and running; the parent's /etc/hosts gets `IP<TAB>alias hostname [name]` for each, and
its process (and its execs) the environment dockerd's `links.Link.ToEnv` writes. A child that starts again
updates the hosts files of its running parents. `DELETE /containers/parent/alias?link=1` removes one.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .store import Container

if TYPE_CHECKING:
    from .service import ContainerService

HOST_LINKS = (
    "conflicting options: host type networking can't be used with links. This would result in undefined "
    "behavior"
)
NOT_DEFAULT_NAME = "Conflict, cannot remove the default link name of the container"


class LinkError(Exception):
    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


# --- pure parts ----------------------------------------------------------------------------------------


def parse_link(value: str) -> tuple[str, str]:
    """opts.ParseLink: `name:alias`, `name` (its own alias), or inspect's `/name:/parent/alias`."""
    if value == "":
        raise ValueError("empty string specified for links")
    parts = value.split(":")
    if len(parts) > 2:
        raise ValueError(f"bad format for links: {value}")
    if len(parts) == 1:
        return value, value
    if parts[0].startswith("/"):
        return parts[0][1:], parts[1].rsplit("/", 1)[-1]
    return parts[0], parts[1]


def _ports(exposed: Iterable[str]) -> list[tuple[int, str]]:
    out = []
    for key in exposed:
        number, _, proto = key.partition("/")
        with contextlib.suppress(ValueError):
            out.append((int(number.partition("-")[0]), (proto or "tcp").lower()))
    # nat.Sort as links.go calls it: by number, tcp first for the same number
    return sorted(out, key=lambda p: (p[0], p[1] != "tcp", p[1]))


def _next_contiguous(ports: list[tuple[int, str]], value: int, index: int) -> int:
    if index + 1 == len(ports):
        return index
    for i in range(index + 1, len(ports)):
        if ports[i][0] > value + 1:
            return i - 1
        value += 1
    return len(ports) - 1


def link_env(name: str, child_ip: str, child_env: list[str] | None, exposed: Iterable[str]) -> list[str]:
    """dockerd's `Link.ToEnv` for the link `name` (`/parent/alias`) to a child at `child_ip`."""
    alias = name.rsplit("/", 1)[-1].upper().replace("-", "_")
    ports = _ports(exposed)
    env = []
    if ports:
        number, proto = ports[0]
        env.append(f"{alias}_PORT={proto}://{child_ip}:{number}")
    i = 0
    while i < len(ports):
        number, proto = ports[i]
        j = _next_contiguous(ports, number, i)
        if j > i + 1:
            key = f"{alias}_PORT_{number}_{proto.upper()}"
            last, last_proto = ports[j]
            end = f"{alias}_PORT_{number}_{last_proto.upper()}"
            env += [
                f"{key}_START={proto}://{child_ip}:{number}",
                f"{key}_ADDR={child_ip}",
                f"{key}_PROTO={proto}",
                f"{key}_PORT_START={number}",
                f"{end}_END={last_proto}://{child_ip}:{last}",
                f"{end}_PORT_END={last}",
            ]
            i = j + 1
        else:
            i += 1
    for number, proto in ports:
        key = f"{alias}_PORT_{number}_{proto.upper()}"
        env += [
            f"{key}={proto}://{child_ip}:{number}",
            f"{key}_ADDR={child_ip}",
            f"{key}_PORT={number}",
            f"{key}_PROTO={proto}",
        ]
    env.append(f"{alias}_NAME={name}")
    for entry in child_env or []:
        key, sep, value = entry.partition("=")
        if not sep or key in ("HOME", "PATH"):
            continue  # dockerd leaves out what a build adds
        env.append(f"{alias}_ENV_{key}={value}")
    return env


def merge_env(process_env: list[str], linked: list[str], config_env: list[str]) -> list[str]:
    """The process env with the link variables where dockerd's CreateDaemonEnvironment puts them: after PATH,
    HOSTNAME and TERM, before the container's own, which win over them."""
    own = {e.partition("=")[0] for e in config_env}
    linked = [e for e in linked if e.partition("=")[0] not in own]
    base = 0
    while (
        base < len(process_env)
        and base < 3
        and process_env[base].partition("=")[0]
        in (
            "PATH",
            "HOSTNAME",
            "TERM",
        )
    ):
        base += 1
    return [*process_env[:base], *linked, *process_env[base:]]


def hosts_entry(alias: str, child: Container, ip: str) -> str:
    """dockerd's /etc/hosts line for a link: the alias, the child's hostname and (unless the alias is it) its
    name."""
    names = f"{alias} {child.config.get('Hostname') or child.id[:12]}"
    if alias != child.name:
        names += f" {child.name}"
    return f"{ip}\t{names}\n"


def update_hosts(text: str, ip: str, alias: str) -> str:
    """etchosts.Update: every line naming `alias` first gets `ip`."""
    pattern = re.compile(rf"(\S*)(\t{re.escape(alias)})(\s|\.)")
    return pattern.sub(lambda m: ip + m.group(2) + m.group(3), text)


def drop_hosts_alias(text: str, alias: str) -> str:
    lines = text.splitlines(keepends=True)
    return "".join(
        line for line in lines if line.split("\t", 1)[-1].split()[:1] != [alias] or "\t" not in line
    )


# --- the links of a daemon's containers ---------------------------------------------------------------


class Links:
    def __init__(self, service: ContainerService) -> None:
        self.service = service

    # create

    def register(self, host_config: dict[str, Any]) -> list[list[str]]:
        """The links of a container being created: [alias, child id, child name], as dockerd's registerLinks
        (nothing on a user-defined network: the links there are the endpoint's)."""
        mode = host_config.get("NetworkMode") or "default"
        if not _legacy_mode(mode):
            return []
        out: list[list[str]] = []
        for value in host_config.get("Links") or []:
            try:
                name, alias = parse_link(str(value))
            except ValueError as e:
                raise LinkError(str(e), 500) from None
            child = self._child(name)
            if any(a == alias for a, _id, _name in out):
                continue  # dockerd: the name /parent/alias is reserved already, the link ignored
            out.append([alias, child.id, child.name])
        return out

    def _child(self, name: str) -> Container:
        try:
            child = self.service.store.get(name)
        except Exception as e:
            raise LinkError(f"could not get container for {name}: No such container: {name}", 400) from e
        seen = {child.id}
        while (child.host_config.get("NetworkMode") or "").startswith("container:"):
            donor = child.host_config["NetworkMode"].partition(":")[2]
            try:
                child = self.service.store.get(donor)
            except Exception as e:
                raise LinkError(
                    f"Could not get container for {donor}: No such container: {donor}", 400
                ) from e
            if child.id in seen:
                break
            seen.add(child.id)
        if (child.host_config.get("NetworkMode") or "") == "host":
            raise LinkError(HOST_LINKS, 400)
        return child

    # what a container's links are

    def children(self, c: Container) -> list[tuple[str, str, Container | None]]:
        """(`/parent/alias`, `/child`, the child or None once removed) for each of its links."""
        out = []
        for alias, child_id, child_name in c.extra.get("links") or []:
            child = self._by_id(child_id)
            out.append((f"/{c.name}/{alias}", "/" + (child.name if child else child_name), child))
        return out

    def parents(self, child: Container) -> list[tuple[Container, str]]:
        return [
            (p, alias)
            for p in self.service.store.all()
            for alias, child_id, _name in p.extra.get("links") or []
            if child_id == child.id
        ]

    def _by_id(self, container_id: str) -> Container | None:
        if container_id not in self.service.store:
            return None
        with contextlib.suppress(Exception):
            return self.service.store.get(container_id)
        return None

    def shown(self, c: Container) -> list[str] | None:
        """Inspect's HostConfig.Links: `/child:/parent/alias`, null without any."""
        return [f"{child}:{full}" for full, child, _c in self.children(c)] or None

    def names(self, c: Container) -> list[str]:
        """The container list's Names: its own and `/parent/alias` of every link to it, sorted as dockerd's
        are."""
        return sorted(["/" + c.name, *(f"/{p.name}/{alias}" for p, alias in self.parents(c))])

    # start

    def _bridge_id(self) -> str:
        networks = self.service.net.networks
        if networks is None:
            return ""
        try:
            return networks.get("bridge").id
        except Exception:
            return ""

    def _on_bridge(self, c: Container, bridge_id: str) -> bool:
        return bool(bridge_id) and bridge_id in (c.extra.get("networks") or {})

    def check_start(self, c: Container) -> None:
        """dockerd's refusals at a parent's start on the default bridge (its 500s): a child off the bridge,
        then one that does not run."""
        bridge_id = self._bridge_id()
        if not (c.extra.get("links") and self._on_bridge(c, bridge_id)):
            return
        children = self.children(c)
        for _full, child_name, child in children:
            if child is not None and not self._on_bridge(child, bridge_id):
                raise LinkError(f"Cannot link to {child_name}, as it does not belong to the default network")
        for full, child_name, child in children:
            if child is None or not child.running:
                raise LinkError(f"Cannot link to a non running container: {child_name} AS {full}")

    def _child_ip(self, child: Container, bridge_id: str) -> str:
        box = self.service.net.sandbox(child)
        ep = next((e for e in box.endpoints if e.network_id == bridge_id), None) if box else None
        return ep.address if ep else ""

    def env(self, c: Container) -> list[str]:
        """The link variables of the container's process (and its execs); raises as dockerd's
        setupLinkedContainers when a child stopped meanwhile."""
        bridge_id = self._bridge_id()
        if not (c.extra.get("links") and self._on_bridge(c, bridge_id)):
            return []
        out: list[str] = []
        for full, child_name, child in self.children(c):
            if child is None or not child.running:
                raise LinkError(f"Cannot link to a non running container: {child_name} AS {full}")
            out += link_env(
                full,
                self._child_ip(child, bridge_id),
                child.config.get("Env"),
                (child.config.get("ExposedPorts") or {}).keys(),
            )
        return out

    def hosts_lines(self, c: Container) -> list[str]:
        bridge_id = self._bridge_id()
        if not (c.extra.get("links") and self._on_bridge(c, bridge_id)):
            return []
        lines = []
        for full, _child_name, child in self.children(c):
            ip = self._child_ip(child, bridge_id) if child is not None else ""
            if child is not None and ip:
                lines.append(hosts_entry(full.rsplit("/", 1)[-1], child, ip))
        return lines

    def started(self, child: Container) -> None:
        """A child (re)started: its running parents on the bridge see its new address (OptionParentUpdate)."""
        bridge_id = self._bridge_id()
        if not self._on_bridge(child, bridge_id):
            return
        ip = self._child_ip(child, bridge_id)
        for parent, alias in self.parents(child):
            if parent.running and ip and self._on_bridge(parent, bridge_id):
                path = self.service.store.dir(parent.id) / "hosts"
                with contextlib.suppress(OSError):
                    path.write_text(update_hosts(path.read_text(), ip, alias))

    # removal

    def find(self, name: str) -> tuple[Container, str] | None:
        """The parent and alias of the link called `name` (`parent/alias`, with or without the first /)."""
        parent_name, _, alias = name.lstrip("/").rpartition("/")
        if not parent_name:
            return None
        try:
            parent = self.service.store.get(parent_name)
        except Exception:
            return None
        if parent.name != parent_name.lstrip("/"):
            return None  # dockerd's name lookup is by the parent's name only
        if any(a == alias for a, _id, _n in parent.extra.get("links") or []):
            return parent, alias
        return None

    def remove(self, parent: Container, alias: str) -> None:
        parent.extra["links"] = [link for link in parent.extra.get("links") or [] if link[0] != alias]
        self.service.store.save(parent)
        if parent.running:  # dockerd refreshes the parent's sandbox: the link's hosts entry goes
            path = self.service.store.dir(parent.id) / "hosts"
            with contextlib.suppress(OSError):
                path.write_text(drop_hosts_alias(path.read_text(), alias))


def _legacy_mode(mode: str) -> bool:
    """Not a user-defined network (dockerd's NetworkMode.IsUserDefined is false)."""
    return mode in ("default", "bridge", "host", "none") or mode.startswith("container:")
