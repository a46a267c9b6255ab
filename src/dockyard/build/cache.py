"""The classic builder's cache: a step is a hit when a child image of the current image was made by the
same step, which the child's `container_config` records (the step's "created by" command in Cmd, plus
the environment, labels, ports, volumes, entrypoint and user the step ran with).

As Docker: the candidates are the images whose parent is the current image (for `FROM scratch`, the
images with no parent); among the matches the most recently created wins; only the fields Docker's
`compare` looks at are compared (so a WORKDIR change alone does not bust a later RUN's cache, a known
Docker quirk kept for fidelity). After the first miss in a stage no later step is looked up.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["configs_match", "find_cached"]


def configs_match(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Docker's image/cache compare(): the cached image's container config against the step's."""
    if not a or not b or a.get("OpenStdin") or b.get("OpenStdin"):
        return False
    for key in ("AttachStdout", "AttachStderr", "User", "Tty"):
        if (a.get(key) or "") != (b.get(key) or ""):
            return False
    for key in ("Cmd", "Env", "Entrypoint"):
        if list(a.get(key) or []) != list(b.get(key) or []):
            return False
    for key in ("Labels", "ExposedPorts", "Volumes"):
        left, right = a.get(key) or {}, b.get(key) or {}
        if len(left) != len(right):
            return False
        if key == "Labels":
            if any(right.get(k) != v for k, v in left.items()):
                return False
        elif any(k not in right for k in left):
            return False
    return True


def find_cached(
    parent_id: str,
    step_config: dict[str, Any],
    candidates: Iterable[tuple[str, str, str, dict[str, Any]]],
) -> str:
    """The ID of the newest cached image for this step, or "".

    `candidates`: (image ID, parent ID, created, container_config) of every image. `created` is an
    RFC 3339 time; ties are broken by ID so the choice is stable."""
    best: tuple[str, str] | None = None
    for image_id, parent, created, container_config in candidates:
        if parent != parent_id:
            continue
        if not configs_match(container_config, step_config):
            continue
        key = (created, image_id)
        if best is None or key > best:
            best = key
    return best[1] if best else ""
