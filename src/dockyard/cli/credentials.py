"""Where the CLI keeps registry credentials: a docker-style config.json (`auths`), as `login` writes it.

$DOCKYARD_CONFIG/config.json, else ~/.dockyard/config.json. The daemon never reads this file: the CLI
sends the credentials of the registry it talks to in the X-Registry-Auth header, as the docker CLI does.
The file format itself is handled by dockyard.distribution.auth (stdlib only, light to import).
"""

from __future__ import annotations

import os


def config_path() -> str:
    base = os.environ.get("DOCKYARD_CONFIG") or os.path.join(os.path.expanduser("~"), ".dockyard")
    return os.path.join(base, "config.json")


def encoded_auth_for(registry: str) -> str | None:
    """The X-Registry-Auth value for a registry domain, or None without stored credentials."""
    from ..distribution.auth import find_credentials, load_credentials

    auth = find_credentials(load_credentials(config_path()), registry)
    return auth.encode_header() if auth is not None else None
