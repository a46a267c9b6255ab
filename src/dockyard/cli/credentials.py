"""The CLI's stored registry credentials: a docker-style config.json (`auths`), as `login` writes it.

Read from $DOCKYARD_CONFIG/config.json, else ~/.dockyard/config.json. The daemon never reads this
file: the CLI sends the credentials of the registry it talks to in the X-Registry-Auth header.
"""

from __future__ import annotations

import base64
import json
import os

DOCKER_HUB_KEY = "https://index.docker.io/v1/"


def config_path() -> str:
    base = os.environ.get("DOCKYARD_CONFIG") or os.path.join(os.path.expanduser("~"), ".dockyard")
    return os.path.join(base, "config.json")


def server_key(registry: str) -> str:
    return (
        DOCKER_HUB_KEY if registry in ("docker.io", "index.docker.io", "registry-1.docker.io") else registry
    )


def load_auths() -> dict:
    try:
        with open(config_path()) as f:
            return json.load(f).get("auths") or {}
    except (FileNotFoundError, ValueError):
        return {}


def encoded_auth_for(registry: str) -> str | None:
    """The X-Registry-Auth value (base64url JSON) for a registry, or None without stored credentials."""
    entry = load_auths().get(server_key(registry))
    if not entry or not entry.get("auth"):
        return None
    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    payload = {"username": user, "password": password, "serveraddress": server_key(registry)}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
