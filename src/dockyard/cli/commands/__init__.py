"""The table of commands. Each module is imported only when its command runs, to keep start-up fast."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings here
    from collections.abc import Callable


class CommandSpec:
    """One command: its module (dockyard.cli.commands.<module>, with configure(spec) and run(args, client)).

    A plain class rather than a dataclass: importing dataclasses costs the CLI ~12 ms at start-up.
    """

    __slots__ = ("name", "module", "summary", "group", "aliases")

    def __init__(
        self, name: str, module: str, summary: str, group: str = "Commands", aliases: tuple[str, ...] = ()
    ) -> None:
        self.name, self.module, self.summary, self.group, self.aliases = name, module, summary, group, aliases


COMMANDS: list[CommandSpec] = [
    CommandSpec("pull", "images", "Download an image from a registry", "Common Commands"),
    CommandSpec("images", "images", "List images", "Common Commands"),
    CommandSpec("build", "build", "Build an image from a Dockerfile", "Common Commands"),
    CommandSpec("info", "system", "Display system-wide information", "Common Commands"),
    CommandSpec("version", "system", "Show the Dockyard version information", "Common Commands"),
    CommandSpec("image", "", "Manage images", "Management Commands"),
    CommandSpec("push", "registry", "Upload an image to a registry", "Common Commands"),
    CommandSpec("login", "registry", "Log in to a registry", "Common Commands"),
    CommandSpec("logout", "registry", "Log out from a registry", "Common Commands"),
    CommandSpec("run", "containers", "Create and run a new container from an image", "Common Commands"),
    CommandSpec("ps", "containers", "List containers", "Common Commands"),
    CommandSpec("create", "containers", "Create a new container"),
    CommandSpec("start", "containers", "Start one or more stopped containers"),
    CommandSpec("stop", "containers", "Stop one or more running containers"),
    CommandSpec("rm", "containers", "Remove one or more containers"),
    CommandSpec("logs", "containers", "Fetch the logs of a container"),
    CommandSpec("wait", "containers", "Block until one or more containers stop, then print their exit codes"),
    CommandSpec("exec", "exec", "Execute a command in a running container", "Common Commands"),
    CommandSpec("events", "system", "Get real time events from the server"),
    CommandSpec("history", "images", "Show the history of an image"),
    CommandSpec("inspect", "manage", "Return low-level information on Dockyard objects"),
    CommandSpec("rmi", "images", "Remove one or more images"),
    CommandSpec("tag", "images", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    CommandSpec("import", "archive", "Import the contents from a tarball to create a filesystem image"),
    CommandSpec("load", "archive", "Load an image from a tar archive or STDIN"),
    CommandSpec(
        "save", "archive", "Save one or more images to a tar archive (streamed to STDOUT by default)"
    ),
    CommandSpec("container", "", "Manage containers", "Management Commands"),
    CommandSpec(
        "attach", "manage", "Attach local standard input, output, and error streams to a running container"
    ),
    CommandSpec("kill", "manage", "Kill one or more running containers"),
    CommandSpec("pause", "manage", "Pause all processes within one or more containers"),
    CommandSpec("rename", "manage", "Rename a container"),
    CommandSpec("restart", "manage", "Restart one or more containers"),
    CommandSpec("stats", "manage", "Display a live stream of container(s) resource usage statistics"),
    CommandSpec("top", "manage", "Display the running processes of a container"),
    CommandSpec("unpause", "manage", "Unpause all processes within one or more containers"),
    CommandSpec("update", "update", "Update configuration of one or more containers"),
    CommandSpec("volume", "", "Manage volumes", "Management Commands"),
    CommandSpec("network", "", "Manage networks", "Management Commands"),
    CommandSpec("system", "", "Manage Dockyard", "Management Commands"),
    CommandSpec("port", "network", "List port mappings or a specific mapping for the container"),
    CommandSpec("commit", "container_fs", "Create a new image from a container's changes"),
    CommandSpec("cp", "container_fs", "Copy files/folders between a container and the local filesystem"),
    CommandSpec(
        "diff", "container_fs", "Inspect changes to files or directories on a container's filesystem"
    ),
    CommandSpec("export", "container_fs", "Export a container's filesystem as a tar archive"),
]

# Subcommands of the management commands: `dockyard image ls` and so on.
SUBCOMMANDS: dict[str, list[CommandSpec]] = {
    "system": [
        CommandSpec("system df", "system", "Show Dockyard disk usage"),
        CommandSpec("system events", "system", "Get real time events from the server"),
        CommandSpec("system info", "system", "Display system-wide information"),
        CommandSpec("system prune", "system", "Remove unused data"),
    ],
    "network": [
        CommandSpec("network connect", "network", "Connect a container to a network"),
        CommandSpec("network create", "network", "Create a network"),
        CommandSpec("network disconnect", "network", "Disconnect a container from a network"),
        CommandSpec("network inspect", "network", "Display detailed information on one or more networks"),
        CommandSpec("network ls", "network", "List networks", aliases=("network list",)),
        CommandSpec("network prune", "network", "Remove all unused networks"),
        CommandSpec("network rm", "network", "Remove one or more networks", aliases=("network remove",)),
    ],
    "volume": [
        CommandSpec("volume create", "volumes", "Create a volume"),
        CommandSpec("volume inspect", "volumes", "Display detailed information on one or more volumes"),
        CommandSpec("volume ls", "volumes", "List volumes", aliases=("volume list",)),
        CommandSpec("volume prune", "volumes", "Remove unused local volumes"),
        CommandSpec("volume rm", "volumes", "Remove one or more volumes", aliases=("volume remove",)),
    ],
    "image": [
        CommandSpec("image build", "build", "Build an image from a Dockerfile"),
        CommandSpec("image history", "images", "Show the history of an image"),
        CommandSpec("image inspect", "images", "Display detailed information on one or more images"),
        CommandSpec("image ls", "images", "List images", aliases=("image list",)),
        CommandSpec("image prune", "images", "Remove unused images"),
        CommandSpec("image pull", "images", "Download an image from a registry"),
        CommandSpec("image push", "registry", "Upload an image to a registry"),
        CommandSpec("image rm", "images", "Remove one or more images", aliases=("image remove",)),
        CommandSpec("image tag", "images", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
        CommandSpec(
            "image import", "archive", "Import the contents from a tarball to create a filesystem image"
        ),
        CommandSpec("image load", "archive", "Load an image from a tar archive or STDIN"),
        CommandSpec(
            "image save",
            "archive",
            "Save one or more images to a tar archive (streamed to STDOUT by default)",
        ),
    ],
    # `container X` for a command another module holds is run by that module, through `manage`
    "container": [
        CommandSpec(
            "container attach",
            "manage",
            "Attach local standard input, output, and error streams to a running container",
        ),
        CommandSpec("container commit", "manage", "Create a new image from a container's changes"),
        CommandSpec(
            "container cp", "manage", "Copy files/folders between a container and the local filesystem"
        ),
        CommandSpec("container create", "manage", "Create a new container"),
        CommandSpec(
            "container diff", "manage", "Inspect changes to files or directories on a container's filesystem"
        ),
        CommandSpec("container exec", "exec", "Execute a command in a running container"),
        CommandSpec("container export", "manage", "Export a container's filesystem as a tar archive"),
        CommandSpec("container inspect", "manage", "Display detailed information on one or more containers"),
        CommandSpec("container kill", "manage", "Kill one or more running containers"),
        CommandSpec("container logs", "manage", "Fetch the logs of a container"),
        CommandSpec("container ls", "manage", "List containers", aliases=("container list", "container ps")),
        CommandSpec("container pause", "manage", "Pause all processes within one or more containers"),
        CommandSpec("container port", "manage", "List port mappings or a specific mapping for the container"),
        CommandSpec("container prune", "manage", "Remove all stopped containers"),
        CommandSpec("container rename", "manage", "Rename a container"),
        CommandSpec("container restart", "manage", "Restart one or more containers"),
        CommandSpec("container rm", "manage", "Remove one or more containers", aliases=("container remove",)),
        CommandSpec("container run", "manage", "Create and run a new container from an image"),
        CommandSpec("container start", "manage", "Start one or more stopped containers"),
        CommandSpec(
            "container stats", "manage", "Display a live stream of container(s) resource usage statistics"
        ),
        CommandSpec("container stop", "manage", "Stop one or more running containers"),
        CommandSpec("container top", "manage", "Display the running processes of a container"),
        CommandSpec("container unpause", "manage", "Unpause all processes within one or more containers"),
        CommandSpec("container update", "manage", "Update configuration of one or more containers"),
        CommandSpec(
            "container wait",
            "manage",
            "Block until one or more containers stop, then print their exit codes",
        ),
    ],
}


def for_each(names: list[str], action: Callable[[str], object]) -> int:
    """As the docker CLI for start, stop, kill...: every container tried, its name printed on success,
    errors on stderr, exit 1 if any failed."""
    import sys

    from ..client import ApiError

    failed = False
    for name in names:
        try:
            action(name)
        except ApiError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            failed = True
            continue
        print(name)
    return 1 if failed else 0


def find(name: str, specs: list[CommandSpec] | None = None) -> CommandSpec | None:
    for spec in COMMANDS if specs is None else specs:
        if name == spec.name or name in spec.aliases:
            return spec
    return None


def group_help(group: str) -> str:
    rows = "\n".join(f"  {spec.name.split(' ', 1)[1]:<11}{spec.summary}" for spec in SUBCOMMANDS[group])
    summary = next(spec.summary for spec in COMMANDS if spec.name == group)
    return (
        f"\nUsage:  dockyard {group} COMMAND\n\n{summary}\n\nCommands:\n{rows}\n\n"
        f"Run 'dockyard {group} COMMAND --help' for more information on a command.\n"
    )
