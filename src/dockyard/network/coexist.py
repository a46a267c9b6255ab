"""Beside other firewalls: accept our bridges' traffic in the host's iptables FORWARD chain.

A packet forwarded by the host passes every base chain at the forward hook, ours (network/firewall.py)
and everyone else's: an accept in our nftables table does not stop another table from dropping. Docker
sets iptables' `filter FORWARD` policy to DROP (and with br_netfilter even frames between two containers
on one bridge go through it), ufw does the same (`DEFAULT_FORWARD_POLICY="DROP"`). So, as netavark and
dockerd do, where an iptables filter table exists we add a chain of our own (`DOCKYARD-<bridge>`, one per
daemon) that accepts what goes in or out of our bridges, and jump to it from the top of FORWARD. The
fine policy (what may enter a bridge, isolation between networks) stays in our own table, which drops
what it must whatever this chain accepted. Nothing of anyone else's rules or policies is changed.

Both iptables backends are served: iptables-nft (its tables are nftables tables `ip filter`, looked up
in-process, 0.1 ms) and iptables-legacy (where its `filter` table is loaded, /proc/net/ip_tables_names).
The rules are rewritten when our set of bridges changes, and the jump put back at the next change of
ours (a container's start, say) if something (a firewall reload, a daemon that started after us) removed
it: checked in-process for the nft backend, by one `iptables-legacy -C` where a legacy table is loaded.

Not covered: firewalld's own nftables table, whose forward chain rejects what no zone allows (netavark
asks firewalld over D-Bus to add the bridges to its trusted zone); IPv6 (no IPv6 networks yet).
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from ..linux.nftables import Nftables, NftablesError

__all__ = ["ForwardAccepts", "chain_name", "restore_input"]

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 30.0


def chain_name(bridge: str) -> str:
    """Our chain in the filter table: iptables chain names have at most 28 characters."""
    return "DOCKYARD-" + re.sub(r"[^A-Za-z0-9_-]", "_", bridge)[:19]


def restore_input(chain: str, devices: list[str]) -> str:
    """iptables-restore --noflush input that (re)declares `chain`, which empties it, with its accepts."""
    lines = ["*filter", f":{chain} - [0:0]"]
    for device in devices:
        lines += [f"-A {chain} -i {device} -j ACCEPT", f"-A {chain} -o {device} -j ACCEPT"]
    return "\n".join([*lines, "COMMIT", ""])


@dataclass
class _Backend:
    name: str  # iptables-nft, iptables-legacy
    command: str
    nft: Nftables | None = None  # for the nft backend: its tables are looked up in-process

    def forward_chain(self) -> str | None:
        """FORWARD of this backend's filter table as nft prints it ("" for legacy), None when the backend
        has no filter table (then nothing of the host would drop our traffic through it)."""
        if self.nft is not None:
            try:
                return self.nft.run("list chain ip filter FORWARD")
            except NftablesError:
                return None
        try:
            with open("/proc/net/ip_tables_names") as f:
                return "" if "filter" in f.read().split() else None
        except OSError:
            return None

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.command, *args], input=stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )

    def install(self, chain: str, devices: list[str]) -> None:
        restore = self.command + "-restore"  # iptables-nft-restore, iptables-legacy-restore
        done = subprocess.run(
            [restore, "-w", "--noflush"],
            input=restore_input(chain, devices),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        if done.returncode != 0:
            raise OSError(f"{restore}: {done.stderr.strip()}")
        if self.run("-w", "-C", "FORWARD", "-j", chain).returncode != 0:
            done = self.run("-w", "-I", "FORWARD", "1", "-j", chain)
            if done.returncode != 0:
                raise OSError(f"{self.command} -I FORWARD: {done.stderr.strip()}")

    def uninstall(self, chain: str) -> None:
        while self.run("-w", "-D", "FORWARD", "-j", chain).returncode == 0:
            pass
        self.run("-w", "-F", chain)
        self.run("-w", "-X", chain)


def _backends(nft: Nftables | None) -> list[_Backend]:
    found = []
    nft_command = shutil.which("iptables-nft") or ""
    if nft_command and nft is not None:
        found.append(_Backend("iptables-nft", nft_command, nft))
    legacy = shutil.which("iptables-legacy")
    if legacy:
        found.append(_Backend("iptables-legacy", legacy))
    return found


@dataclass
class ForwardAccepts:
    """The daemon's chain in each iptables backend's FORWARD."""

    bridge: str
    nft: Nftables | None
    _applied: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def chain(self) -> str:
        return chain_name(self.bridge)

    def ensure(self, devices: list[str]) -> None:
        """Accept `devices`' traffic wherever an iptables filter table exists. Cheap when nothing changed:
        one in-process lookup for the nft backend, a file read for legacy."""
        wanted = tuple(sorted(devices))
        for backend in _backends(self.nft):
            forward = backend.forward_chain()
            if forward is None:
                self._applied.pop(backend.name, None)
                continue
            if backend.nft is not None:
                jumps = f"jump {self.chain}" in forward
            else:  # legacy rules cannot be listed in-process: asked of iptables-legacy (~4 ms)
                jumps = backend.run("-w", "-C", "FORWARD", "-j", self.chain).returncode == 0
            if self._applied.get(backend.name) == wanted and jumps:
                continue
            try:
                backend.install(self.chain, list(wanted))
            except (OSError, subprocess.SubprocessError) as e:
                log.warning("accepting our bridges in %s's FORWARD failed: %s", backend.name, e)
                continue
            self._applied[backend.name] = wanted

    def remove(self) -> None:
        """Our chain and its jump out of every backend (for daemons of tests, benchmarks and demos)."""
        for backend in _backends(self.nft):
            if backend.forward_chain() is not None:
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    backend.uninstall(self.chain)
        self._applied.clear()
