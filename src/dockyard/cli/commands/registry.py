"""push, login, logout."""

from __future__ import annotations

import getpass
import sys

from ...reference import InvalidReference, parse_reference
from ..client import ApiClient
from ..credentials import config_path, encoded_auth_for
from ..parser import CommandParser
from ..progress import StreamError, display_stream, json_lines
from . import CommandSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

EMPTY_AUTH = "e30="
DOCKER_HUB_SERVER = "https://index.docker.io/v1/"


def configure(spec: CommandSpec) -> CommandParser:
    name = spec.name
    if name in ("push", "image push"):
        p = CommandParser(name, f"dockyard {name} [OPTIONS] NAME[:TAG]", "Upload an image to a registry")
        p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
        p.add_argument("image", metavar="NAME[:TAG]")
    elif name == "login":
        p = CommandParser(
            name,
            "dockyard login [OPTIONS] [SERVER]",
            "Log in to a registry.\nIf no server is specified, the default is defined by the daemon.",
        )
        p.add_argument("-p", "--password", metavar="string", help="Password")
        p.add_argument("--password-stdin", action="store_true", help="Take the password from stdin")
        p.add_argument("-u", "--username", metavar="string", help="Username")
        p.add_argument("server", nargs="?", metavar="SERVER")
    else:
        p = CommandParser(
            name,
            "dockyard logout [SERVER]",
            "Log out from a registry.\nIf no server is specified, the default is defined by the daemon.",
        )
        p.add_argument("server", nargs="?", metavar="SERVER")
    return p


def run(args: Any, client: ApiClient) -> int:
    if args.command in ("push", "image push"):
        return push(args, client)
    return login(args, client) if args.command == "login" else logout(args)


def push(args: Any, client: ApiClient) -> int:
    try:
        ref = parse_reference(args.image, default_tag=None)
    except InvalidReference as e:
        print(str(e), file=sys.stderr)
        return 1
    tag = ref.tag or "latest"
    if not ref.tag:
        print("Using default tag: latest")
    response = client.request(
        "POST",
        f"/images/{ref.familiar_name}/push",
        {"tag": tag},
        headers={"X-Registry-Auth": encoded_auth_for(ref.domain) or EMPTY_AUTH},
    )
    messages = json_lines(response.iter_lines())
    try:
        if args.quiet:
            for message in messages:
                if message.get("error") or message.get("errorDetail"):
                    raise StreamError((message.get("errorDetail") or {}).get("message") or message["error"])
            print(str(ref.with_tag(tag)))
        else:
            display_stream(messages)
    except StreamError as e:
        print(str(e), file=sys.stderr)
        return 1
    return 0


def login(args: Any, client: ApiClient) -> int:
    from ...distribution.auth import AuthConfig, credential_key, store_credentials

    server = args.server or DOCKER_HUB_SERVER
    password = args.password
    if args.password_stdin:
        if password:
            print("--password and --password-stdin are mutually exclusive", file=sys.stderr)
            return 1
        if not args.username:
            print("Must provide --username with --password-stdin", file=sys.stderr)
            return 1
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
    username = args.username
    if not username:
        if not sys.stdin.isatty():
            print("Error: Cannot perform an interactive login from a non TTY device", file=sys.stderr)
            return 1
        username = input("Username: ").strip()
    if not password:
        if not sys.stdin.isatty():
            print("Error: Cannot perform an interactive login from a non TTY device", file=sys.stderr)
            return 1
        password = getpass.getpass("Password: ")
    auth = AuthConfig(username=username, password=password, server_address=server)
    result = client.post_json("/auth", auth.to_dict())
    store_credentials(config_path(), credential_key(server), auth)
    print(result.get("Status") or "Login Succeeded")
    return 0


def logout(args: Any) -> int:
    from ...distribution.auth import credential_key, remove_credentials

    server = credential_key(args.server or DOCKER_HUB_SERVER)
    if remove_credentials(config_path(), server):
        print(f"Removing login credentials for {server}")
    else:
        print(f"Not logged in to {server}")
    return 0
