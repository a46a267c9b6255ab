"""Go's names for machine architectures (GOARCH), as Docker names them in image configs and indexes,
`version`/`info` and seccomp profiles. Pure and light: the CLI imports it too."""

from __future__ import annotations

import os

GO_ARCH = {
    "x86_64": "amd64",
    "i386": "386",
    "i686": "386",
    "aarch64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "mips64": "mips64",
    "riscv64": "riscv64",
}


def go_arch(machine: str | None = None) -> str:
    """`machine` (a uname machine; this host's by default) as Go names it."""
    machine = machine or os.uname().machine
    return GO_ARCH.get(machine, machine)
