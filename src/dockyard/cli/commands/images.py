"""pull, images, rmi, tag, image inspect, history, image prune."""

from __future__ import annotations

import sys

from ...reference import InvalidReference, parse_reference
from ...units import human_size
from ..client import ApiClient
from ..parser import CommandParser, confirm, parse_filters
from ..progress import StreamError, display_stream, json_lines
from ..tables import ago, table
from . import CommandSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The empty registry auth Docker's CLI sends when it has no stored credentials: base64url("{}").
EMPTY_AUTH = "e30="


def configure(spec: CommandSpec) -> CommandParser:
    name = spec.name
    if name in ("pull", "image pull"):
        p = CommandParser(
            name, f"dockyard {name} [OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry"
        )
        p.add_argument(
            "-a", "--all-tags", action="store_true", help="Download all tagged images in the repository"
        )
        p.add_argument(
            "--platform", metavar="string", help="Set platform if server is multi-platform capable"
        )
        p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
        p.add_argument("image", metavar="NAME[:TAG|@DIGEST]")
    elif name in ("images", "image ls"):
        p = CommandParser(name, f"dockyard {name} [OPTIONS] [REPOSITORY[:TAG]]", "List images")
        p.add_argument(
            "-a", "--all", action="store_true", help="Show all images (default hides intermediate images)"
        )
        p.add_argument("--digests", action="store_true", help="Show digests")
        p.add_filter()
        p.add_format()
        p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
        p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
        p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    elif name in ("rmi", "image rm"):
        p = CommandParser(name, f"dockyard {name} [OPTIONS] IMAGE [IMAGE...]", "Remove one or more images")
        p.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
        p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")
        p.add_argument("images", nargs="+", metavar="IMAGE")
    elif name in ("tag", "image tag"):
        p = CommandParser(
            name,
            f"dockyard {name} SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
            "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
        )
        p.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
        p.add_argument("target", metavar="TARGET_IMAGE[:TAG]")
    elif name == "image inspect":
        p = CommandParser(
            name,
            "dockyard image inspect [OPTIONS] IMAGE [IMAGE...]",
            "Display detailed information on one or more images",
        )
        p.add_format(short=True)
        p.add_argument("images", nargs="+", metavar="IMAGE")
    elif name == "inspect":
        p = CommandParser(
            name,
            "dockyard inspect [OPTIONS] NAME|ID [NAME|ID...]",
            "Return low-level information on Dockyard objects",
        )
        p.add_format(short=True)
        p.add_argument("--type", metavar="string", help="Return JSON for specified type")
        p.add_argument("images", nargs="+", metavar="NAME|ID")
    elif name in ("history", "image history"):
        p = CommandParser(name, f"dockyard {name} [OPTIONS] IMAGE", "Show the history of an image")
        p.add_argument(
            "-H",
            "--human",
            action="store_true",
            default=True,
            help="Print sizes and dates in human readable format (default true)",
        )
        p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
        p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
        p.add_format()
        p.add_argument("image", metavar="IMAGE")
    else:  # image prune
        p = CommandParser(name, "dockyard image prune [OPTIONS]", "Remove unused images")
        p.add_argument(
            "-a", "--all", action="store_true", help="Remove all unused images, not just dangling ones"
        )
        p.add_filter(short=False, help='Provide filter values (e.g. "until=<timestamp>")')
        p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    return p


def run(args: Any, client: ApiClient) -> int:
    handler = {
        "pull": pull,
        "image pull": pull,
        "images": list_images,
        "image ls": list_images,
        "rmi": remove,
        "image rm": remove,
        "tag": tag,
        "image tag": tag,
        "image inspect": inspect,
        "inspect": inspect,
        "history": history,
        "image history": history,
        "image prune": prune,
    }[args.command]
    return handler(args, client)


def registry_auth_header(registry: str) -> str:
    from ..credentials import encoded_auth_for

    return encoded_auth_for(registry) or EMPTY_AUTH


def pull(args: Any, client: ApiClient) -> int:
    try:
        ref = parse_reference(args.image, default_tag=None)
    except InvalidReference as e:
        print(f"{e}", file=sys.stderr)
        return 1
    if args.all_tags:
        print("--all-tags is not supported yet", file=sys.stderr)
        return 1
    if not ref.tag and not ref.digest:
        ref = ref.with_tag("latest")
        if not args.quiet:
            print("Using default tag: latest")
    query = {"fromImage": ref.repository, "tag": ref.digest or ref.tag, "platform": args.platform}
    response = client.request(
        "POST", "/images/create", query, headers={"X-Registry-Auth": registry_auth_header(ref.domain)}
    )
    messages = json_lines(response.iter_lines())
    try:
        if args.quiet:
            for message in messages:
                if message.get("error") or message.get("errorDetail"):
                    raise StreamError((message.get("errorDetail") or {}).get("message") or message["error"])
        else:
            display_stream(messages)
    except StreamError as e:
        print(str(e), file=sys.stderr)
        return 1
    print(str(ref))
    return 0


def _short_id(image_id: str, no_trunc: bool) -> str:
    return image_id if no_trunc else image_id.split(":", 1)[-1][:12]


def _image_rows(image: dict[str, Any], show_digests: bool) -> list[tuple[str, str, str]]:
    """(repository, tag, digest) rows as the docker CLI's imageFormatTaggedAndDigest makes them: a row per
    tag (per tag and digest with --digests), then the repositories only a digest names, tag `<none>`."""
    tags = image.get("RepoTags") or []
    digests = image.get("RepoDigests") or []
    if (not tags and not digests) or (tags == ["<none>:<none>"] and digests == ["<none>@<none>"]):
        return [("<none>", "<none>", "<none>")]
    repo_tags: dict[str, list[str]] = {}
    repo_digests: dict[str, list[str]] = {}
    for ref in tags:
        repo, sep, tag = ref.rpartition(":")
        if sep and "/" not in tag and repo and "<" not in ref:
            repo_tags.setdefault(repo, []).append(tag)
    for ref in digests:
        repo, sep, digest = ref.partition("@")
        if sep and repo and "<" not in ref:
            repo_digests.setdefault(repo, []).append(digest)
    rows = []
    for repo, repo_tag_names in repo_tags.items():
        own_digests = repo_digests.pop(repo, [])  # never a row of their own beside the tags
        shown = own_digests if show_digests else []
        for tag in repo_tag_names:
            rows += [(repo, tag, d) for d in shown] if shown else [(repo, tag, "<none>")]
    for repo, repo_digest_list in sorted(repo_digests.items()):
        rows += [(repo, "<none>", d) for d in repo_digest_list] if show_digests else [(repo, "<none>", "")]
    return rows


def list_images(args: Any, client: ApiClient) -> int:
    filters = parse_filters(args.filter)
    if args.repository:
        filters.setdefault("reference", {})[args.repository] = True
    images = client.get_json("/images/json", {"all": args.all, "filters": filters or None})
    rows = []
    for image in images:
        for repo, tag_name, digest in _image_rows(image, args.digests):
            rows.append(
                {
                    "ID": _short_id(image["Id"], args.no_trunc),
                    "Repository": repo,
                    "Tag": tag_name,
                    "Digest": digest,
                    "CreatedSince": ago(image["Created"]),
                    "CreatedAt": image["Created"],
                    "Size": human_size(image["Size"], 3),
                }
            )
    if args.quiet:
        for row in rows:
            print(row["ID"])
        return 0
    if args.format:
        from ..template import render

        for row in rows:
            print(render(args.format, row))
        return 0
    header = ["REPOSITORY", "TAG"] + (["DIGEST"] if args.digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    lines = [header] + [
        [r["Repository"], r["Tag"]]
        + ([r["Digest"]] if args.digests else [])
        + [r["ID"], r["CreatedSince"], r["Size"]]
        for r in rows
    ]
    print(table(lines))
    return 0


def remove(args: Any, client: ApiClient) -> int:
    status = 0
    for name in args.images:
        try:
            records = client.request(
                "DELETE", f"/images/{name}", {"force": args.force, "noprune": args.no_prune}
            ).json()
        except Exception as e:  # each image is removed on its own; report and go on, as docker does
            from ..client import ApiError

            if not isinstance(e, ApiError):
                raise
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            status = 1
            continue
        for record in records:
            for key, value in record.items():
                print(f"{key}: {value}")
    return status


def tag(args: Any, client: ApiClient) -> int:
    try:
        target = parse_reference(args.target)
    except InvalidReference as e:
        print(f'Error parsing reference: "{args.target}" is not a valid repository/tag: {e}', file=sys.stderr)
        return 1
    client.request("POST", f"/images/{args.source}/tag", {"repo": target.repository, "tag": target.tag})
    return 0


def inspect(args: Any, client: ApiClient) -> int:
    from ..client import ApiError

    found, status = [], 0
    for name in args.images:
        try:
            found.append(client.get_json(f"/images/{name}/json"))
        except ApiError as e:
            if e.status != 404:
                raise
            kind = "object" if args.command == "inspect" else "image"
            print(f"Error: No such {kind}: {name}", file=sys.stderr)
            status = 1
    from ..template import print_inspected

    print_inspected(found, args.format)
    return status


def history(args: Any, client: ApiClient) -> int:
    entries = client.get_json(f"/images/{args.image}/history")
    if args.quiet:
        for entry in entries:
            print(_short_id(entry["Id"], args.no_trunc) if entry["Id"] != "<missing>" else "<missing>")
        return 0
    rows = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
    for entry in entries:
        created_by = entry["CreatedBy"].replace("\t", " ")
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        image_id = entry["Id"] if entry["Id"] == "<missing>" else _short_id(entry["Id"], args.no_trunc)
        rows.append(
            [image_id, ago(entry["Created"]), created_by, human_size(entry["Size"], 3), entry["Comment"]]
        )
    print(table(rows))
    return 0


def prune(args: Any, client: ApiClient) -> int:
    filters = parse_filters(args.filter)
    if args.all:
        filters.setdefault("dangling", {})["false"] = True
    if not args.force:
        warning = (
            "WARNING! This will remove all images without at least one container associated to them."
            if args.all
            else "WARNING! This will remove all dangling images."
        )
        if not confirm(warning):
            return 0
    result = client.post_json("/images/prune", query={"filters": filters or None})
    deleted = result.get("ImagesDeleted") or []
    if deleted:
        print("Deleted Images:")
        for record in deleted:
            for key, value in record.items():
                print(f"{key.lower()}: {value}")
        print()
    print(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed', 0))}")
    return 0
