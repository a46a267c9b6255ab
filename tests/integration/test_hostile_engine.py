"""Hostile images and hostile container processes against the engine's own file handling, on the built-in
runtime and runc: `cp` both ways (the docker CLI, ours, docker-py), `export`, `diff`, `commit`, a volume's
copy-up of image content, `build` (COPY, ADD, WORKDIR, RUN, the context itself) and user lookups.

An image makes top-level directories and a nested one links out of its root (each kind of hostile.py:
absolute, relative, `/../..`, chains, loops); a container process swaps a directory for a link to the
host while the engine works on it. Each command either succeeds with its effect inside the container's
root or fails with one line, and the host's decoy directory, /dev/null and /etc are as they were; nothing
of the host's is read into an archive, a volume, a layer or a user lookup."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker as docker_sdk
import hostile
import pytest
import testimages
from harness import DOCKYARD, unique, until

pytestmark = pytest.mark.runtimes()

TIMEOUT = 60.0
KINDS = sorted(hostile.LINK_KINDS)
NESTED = "srv/app/sub"  # a link below real directories
FILES = {"srv/app/keep": b"image\n"}
HOST_CONTENT = b"host\n"  # what HostState's sentinel holds: never in anything the engine hands out
CLASSIC = {"DOCKER_BUILDKIT": "0"}
# linked top-level directories an image can still run and build with (a linked /tmp would make every
# in-root link target, all under the decoy's /tmp/..., a loop: refused, but then nothing is left to check)
RUNNABLE = ("var", "run")


# --- fixtures and helpers --------------------------------------------------------------------------------


@pytest.fixture
def host() -> Iterator[hostile.HostState]:
    state = hostile.HostState()
    yield state
    state.remove()


@pytest.fixture
def images(docker) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    if made:
        docker("rmi", "-f", *made, timeout=TIMEOUT)


@pytest.fixture
def volumes(docker) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    if made:
        docker("volume", "rm", "-f", *made, timeout=TIMEOUT)


def _push(docker, registry, links: dict[str, str], decoy: Path, files=None, **config) -> str:
    tar = hostile.hostile_tar({**hostile.chain_links(decoy), **links}, {**FILES, **(files or {})})
    image = testimages.build_from_tars(
        [tar], config={"config": {"Env": [testimages.PATH_ENV], "Cmd": ["sh"], **config}}
    )
    repo = unique("test/hostile-engine")
    testimages.push_image(registry.address, repo, "latest", image)
    ref = f"{registry.address}/{repo}:latest"
    pulled = docker("pull", ref, timeout=TIMEOUT)
    assert pulled.returncode == 0, pulled.output
    return ref


def _every_link(kind: str, decoy: Path, tops=hostile.TOP_LEVEL) -> dict[str, str]:
    target = hostile.link_target(kind, decoy)
    return {**{top: target for top in tops}, NESTED: target}


def _one_line_or_ok(result, what: str) -> bool:
    if result.returncode == 0:
        return True
    stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode(errors="replace")
    lines = [line for line in stderr.strip().splitlines() if line.strip() and not _cli_noise(line)]
    assert len(lines) == 1 and "Traceback" not in stderr, f"{what}: {stderr}"
    return False


def _cli_noise(line: str) -> bool:
    """What the docker CLI prints around the daemon's one-line error: its own logs (a tar it could not
    finish sending), the hint after a failed `run`, a failed quiet build's steps."""
    return (line.startswith('time="') and "level=error" in line) or line.startswith(
        (
            "DEPRECATED:",
            " " * 12,
            "Run 'docker ",
            "Step ",
            " ---> ",
            "Sending build context",
            "Removing intermediate",
        )
    )


def _holds_host_content(top: Path) -> list[str]:
    """Regular files under `top` (links not followed) that hold the host's sentinel."""
    found = []
    for directory, dirs, files in os.walk(top):
        for name in files + dirs:
            path = Path(directory, name)
            if path.is_file() and not path.is_symlink() and path.read_bytes() == HOST_CONTENT:
                found.append(str(path))
    return found


def _tar_leaks(data: bytes) -> list[str]:
    """Members holding the host's sentinel (an archive cut short by an error is read as far as it goes)."""
    found = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|*") as tar:
            for m in tar:
                if m.isreg() and m.size == len(HOST_CONTENT) and tar.extractfile(m).read() == HOST_CONTENT:
                    found.append(m.name)
    except (tarfile.ReadError, EOFError):
        pass
    return found


def _tar(entries: list[tuple[str, str, bytes | str]]) -> bytes:
    """A tar of (kind, name, data or link target): "f" file, "d" directory, "l" symlink, "h" hard link."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for kind, name, data in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "d" else 0o644
            if kind == "f":
                assert isinstance(data, bytes)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE}[kind]
            info.linkname = str(data)
            tar.addfile(info)
    return buf.getvalue()


def _clis(docker, daemon):
    """(name, argv prefix, env) of the two CLIs, for commands that pipe bytes."""
    env = {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(daemon.root / "docker-config")}
    return [("docker", ["docker"], env), ("dockyard", [DOCKYARD, "-H", daemon.host], dict(os.environ))]


def _pipe(argv: list[str], env: dict[str, str], data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=data, capture_output=True, env=env, timeout=TIMEOUT)


def _create(docker, names: list[str], ref: str, *args: str) -> str:
    name = unique("hostile")
    names.append(name)
    created = docker("create", "--name", name, *args, ref, "true", timeout=TIMEOUT)
    assert created.returncode == 0, created.output
    return name


# --- cp out, export -------------------------------------------------------------------------------------


def _cp_images(docker, registry, kind: str, decoy: Path) -> list[tuple[str, bool]]:
    """(reference, whether the links lead somewhere): every top-level directory and a nested one linked,
    their targets missing in the root; and all but /tmp linked, the decoy's path made inside the root
    (holding `inroot`), so the links lead to a directory of the container's own (but for a loop)."""
    every = _push(docker, registry, _every_link(kind, decoy), decoy)
    tops = tuple(t for t in hostile.TOP_LEVEL if t != "tmp")
    inside = {f"{str(decoy).lstrip('/')}/inroot": b"inside\n"}
    reachable = _push(docker, registry, _every_link(kind, decoy, tops), decoy, inside)
    return [(every, False), (reachable, kind != "loop")]


def _linked(reachable: bool) -> tuple[str, ...]:
    return (*(t for t in hostile.TOP_LEVEL if not reachable or t != "tmp"), NESTED)


@pytest.mark.parametrize("kind", KINDS)
def test_cp_out_and_export_read_only_the_container(
    docker, dockyard, daemon, registry, host, names, tmp_path, kind
):
    for ref, reachable in _cp_images(docker, registry, kind, host.decoy):
        name = _create(docker, names, ref)
        for top in _linked(reachable):
            for cli in (docker, dockyard):
                for path in (
                    f"/{top}/sentinel",
                    f"/{top}/",
                    f"/{top}/.",
                    f"/{top}",
                    f"/{top}/../{top}/sentinel",
                ):
                    out = tmp_path / unique("out")
                    result = cli("cp", f"{name}:{path}", str(out), timeout=TIMEOUT)
                    _one_line_or_ok(result, f"cp {kind} {path}")
                    assert not _holds_host_content(tmp_path), f"cp {kind} {path} read the host"
                out = tmp_path / unique("out")
                inside = cli("cp", f"{name}:/{top}/inroot", str(out), timeout=TIMEOUT)
                assert (inside.returncode == 0) == reachable, inside.output
                if reachable:  # the link's target inside the root, read through the link
                    assert out.read_text() == "inside\n"
            host.assert_untouched(f"cp out of /{top} ({kind})")
        for cli_name, argv, env in _clis(docker, daemon):
            exported = _pipe([*argv, "export", name], env)
            assert exported.returncode == 0, exported.stderr
            assert not _tar_leaks(exported.stdout), f"{cli_name} export read the host"
            with tarfile.open(fileobj=io.BytesIO(exported.stdout)) as tar:
                members = {m.name: m for m in tar}
            # the links are in the export as links, with the image's own targets
            assert members["etc"].issym() and members["etc"].linkname == hostile.link_target(kind, host.decoy)
            assert members["srv/app/keep"].isreg() and members[NESTED].issym()
            host.assert_untouched(f"{cli_name} export ({kind})")


# --- cp in ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_cp_in_writes_only_inside(docker, dockyard, daemon, registry, host, names, tmp_path, kind):
    local = tmp_path / "local.txt"
    local.write_text("local\n")
    payload = tmp_path / "payload"
    (payload / "sub").mkdir(parents=True)
    (payload / "sub" / "evil").write_text("payload\n")
    target = hostile.link_target(kind, host.decoy)
    through_links = _tar(
        [("f", f"{top}/evil", b"evil\n") for top in hostile.TOP_LEVEL]
        + [("l", "lnk", target), ("f", "lnk/evil", b"evil\n"), ("d", "deep", b""), ("l", "deep/x", target)]
        + [("f", "deep/x/evil", b"evil\n"), ("f", f"{NESTED}/evil", b"evil\n")]
    )
    # a hard link through a link, then a file written over the hard link's name
    hard = _tar([("l", "lnk2", target), ("h", "hl", "lnk2/sentinel"), ("f", "hl", b"pwned\n")])
    for ref, reachable in _cp_images(docker, registry, kind, host.decoy):
        name = _create(docker, names, ref)
        for top in _linked(reachable):
            for cli in (docker, dockyard):
                for source, dest in ((local, f"/{top}/x"), (local, f"/{top}/"), (payload, f"/{top}")):
                    result = cli("cp", str(source), f"{name}:{dest}", timeout=TIMEOUT)
                    _one_line_or_ok(result, f"cp {source.name} {dest} ({kind})")
                    host.assert_untouched(f"cp {source.name} {dest} ({kind})")
                copy = f"x-{top.replace('/', '-')}-{cli is docker}"
                copied = cli("cp", str(local), f"{name}:/{top}/{copy}", timeout=TIMEOUT)
                if reachable:  # it landed where the link leads inside the root
                    assert copied.returncode == 0, copied.output
                    back = tmp_path / unique("back")
                    seen = cli("cp", f"{name}:{host.decoy}/{copy}", str(back), timeout=TIMEOUT)
                    assert seen.returncode == 0 and back.read_text() == "local\n", seen.output
        for cli_name, argv, env in _clis(docker, daemon):
            for what, data in (("links then writes", through_links), ("hard link", hard)):
                put = _pipe([*argv, "cp", "-", f"{name}:/"], env, data)
                _one_line_or_ok(put, f"{cli_name} cp - ({what}, {kind})")
                host.assert_untouched(f"{cli_name} cp - ({what}, {kind})")


def test_cp_archive_mode_and_users_come_from_the_containers_passwd(
    docker, dockyard, docker_client, registry, host, names, tmp_path
):
    """`cp -a`, `run --user` and `exec --user` look the user up in the container's /etc, never in the
    host directory its /etc links to."""
    hostetc = tmp_path / "hostetc"
    hostetc.mkdir()
    (hostetc / "passwd").write_text("decoyuser:x:4242:4242::/:/bin/sh\n")
    (hostetc / "group").write_text("decoygroup:x:4343:\n")
    ref = _push(docker, registry, {"etc": str(hostetc)}, host.decoy)
    name = _create(docker, names, ref, "--user", "decoyuser:decoygroup")
    (tmp_path / "mine").write_text("m")
    for cli in (docker, dockyard):
        copied = cli("cp", "-a", str(tmp_path / "mine"), f"{name}:/tmp/", timeout=TIMEOUT)
        _one_line_or_ok(copied, "cp -a")
        if copied.returncode == 0:
            bits, _ = docker_client.containers.get(name).get_archive("/tmp/mine")
            with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tar:
                assert tar.getmember("mine").uid != 4242, "cp -a took the host's passwd"
        else:
            assert "decoyuser" in copied.stderr, copied.output
    ran = docker("run", "--rm", "--user", "decoyuser", ref, "id", "-u", timeout=TIMEOUT)
    _one_line_or_ok(ran, "run --user")
    assert "4242" not in ran.stdout, "run --user took the host's passwd"
    runner = unique("hostile")
    names.append(runner)
    started = docker("run", "-d", "--name", runner, ref, "sleep", "60", timeout=TIMEOUT)
    if started.returncode == 0:
        ran = docker("exec", "--user", "decoyuser", runner, "id", "-u", timeout=TIMEOUT)
        assert "4242" not in ran.stdout, "exec --user took the host's passwd"
        if ran.returncode != 0:  # (as dockerd: the exec's own error is its output, status 126)
            assert ran.output.strip() == "unable to find user decoyuser: no matching entries in passwd file"
    assert sorted(p.name for p in hostetc.iterdir()) == ["group", "passwd"]
    host.assert_untouched("user lookups")


# --- diff and commit ------------------------------------------------------------------------------------


def test_diff_and_commit_do_not_look_through_a_lower_layers_link(
    docker, docker_client, registry, host, names, images, tmp_path
):
    """The image's /var links to a host directory holding `secret` and `sub/`; the container replaces the
    link with a directory of its own holding the same names. They are additions (nothing below them),
    and the committed layer keeps the empty `sub`."""
    hostvar = tmp_path / "hostvar"
    (hostvar / "sub").mkdir(parents=True)
    os.chmod(hostvar / "sub", 0o755)
    (hostvar / "secret").write_text("s")
    ref = _push(docker, registry, {"var": str(hostvar)}, host.decoy)
    name = _create(docker, names, ref)
    tree = _tar(
        [("d", "var", b""), ("f", "var/secret", b"mine\n"), ("d", "var/sub", b""), ("f", "var/new", b"n\n")]
    )
    # (through the API: the docker CLI asks for noOverwriteDirNonDir, and /var is a link in the image)
    assert docker_client.api.put_archive(name, "/", tree)
    diff = docker("diff", name, timeout=TIMEOUT)
    assert diff.returncode == 0, diff.output
    lines = diff.stdout.splitlines()
    assert "A /var/secret" in lines and "A /var/sub" in lines and "A /var/new" in lines, diff.stdout
    tag = unique("hostile-commit").lower()
    committed = docker("commit", name, tag, timeout=TIMEOUT)
    assert committed.returncode == 0, committed.output
    images.append(tag)
    again = _create(docker, names, tag)
    sub = docker("cp", f"{again}:/var/sub", str(tmp_path / "sub-back"), timeout=TIMEOUT)
    assert sub.returncode == 0, f"the commit lost /var/sub: {sub.output}"
    assert sorted(p.name for p in hostvar.iterdir()) == ["secret", "sub"]
    assert (hostvar / "secret").read_text() == "s"
    host.assert_untouched("diff and commit")


# --- volume copy-up -------------------------------------------------------------------------------------


def _volume_dir(docker, volume: str) -> Path:
    inspected = docker("volume", "inspect", volume, timeout=TIMEOUT)
    assert inspected.returncode == 0, inspected.output
    return Path(json.loads(inspected.stdout)[0]["Mountpoint"])


@pytest.mark.parametrize("kind", KINDS)
def test_volume_copy_up_copies_only_the_image(docker, registry, host, names, volumes, kind):
    """A new volume mounted under a linked directory (named, and the image's own VOLUMEs) is filled from
    where the link leads inside the root, never from the host; a link to `/etc` gives the image's /etc."""
    links = {**_every_link(kind, host.decoy, RUNNABLE), "srv/etc-link": "/etc"}
    ref = _push(
        docker,
        registry,
        links,
        host.decoy,
        Volumes={"/var/lib/data": {}, f"/{NESTED}/vol": {}, "/srv/app": {}},
    )
    # the image's /etc, plus what the engine makes in every container's (the init layer's mtab link, the
    # mount points of hostname, hosts and resolv.conf)
    host_only = {p for p in os.listdir("/etc")} - {
        "passwd",
        "group",
        "mtab",
        "hostname",
        "hosts",
        "resolv.conf",
    }
    for dest in ("/tmp/data", f"/{NESTED}", f"/{NESTED}/x/y", "/run/x", "/srv/etc-link", "/var"):
        volume = unique("hostile-vol")
        volumes.append(volume)
        name = unique("hostile")
        names.append(name)
        ran = docker("run", "--name", name, "-v", f"{volume}:{dest}", ref, "ls", "-a", dest, timeout=TIMEOUT)
        _one_line_or_ok(ran, f"volume at {dest} ({kind})")
        host.assert_untouched(f"volume at {dest} ({kind})")
        content = _volume_dir(docker, volume)
        assert not _holds_host_content(content), f"volume at {dest} ({kind}) holds the host's file"
        assert not {p.name for p in content.iterdir()} & host_only, f"volume at {dest} holds the host's /etc"
        if dest in ("/tmp/data", "/srv/etc-link") and kind != "loop":  # (the image's VOLUMEs: in a loop)
            assert ran.returncode == 0, ran.output
        if dest == "/srv/etc-link" and kind != "loop":  # the image's /etc, where the link leads inside
            assert {"passwd", "group"} <= {p.name for p in content.iterdir()}, ran.output
        if dest == "/srv/app" or ran.returncode != 0:
            continue
        inspected = json.loads(docker("inspect", name, timeout=TIMEOUT).stdout)[0]
        for mount in inspected["Mounts"]:  # the image's anonymous volumes
            assert not _holds_host_content(Path(mount["Source"])), mount
            if mount["Destination"] == "/srv/app":
                assert (Path(mount["Source"]) / "keep").read_bytes() == b"image\n"
        docker("rm", "-v", name, timeout=TIMEOUT)


# --- build ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_build_copy_add_workdir_run_stay_inside(
    docker, dockyard, registry, host, names, images, tmp_path, kind
):
    target = hostile.link_target(kind, host.decoy)
    ref = _push(docker, registry, _every_link(kind, host.decoy, RUNNABLE), host.decoy)
    context = tmp_path / "context"
    (context / "payload" / "sub").mkdir(parents=True)
    (context / "payload" / "sub" / "evil").write_text("payload\n")
    (context / "file.txt").write_text("file\n")
    (context / "through.tar").write_bytes(
        _tar(
            [
                ("l", "lnk", target),
                ("f", "lnk/evil", b"evil\n"),
                ("f", "sub/evil2", b"evil\n"),
                ("f", "plain", b"plain\n"),
            ]
        )
    )
    (context / "hard.tar").write_bytes(
        _tar([("l", "lnk", target), ("h", "hl", "lnk/sentinel"), ("f", "hl", b"pwned\n")])
    )
    steps = {
        # the image's /srv/app/sub is a link: the payload's sub/ replaces it, as dockerd's untar does
        "copy-nested": ("COPY payload/ /srv/app/", "cat /srv/app/sub/evil", "payload"),
        "copy-tops": (
            "COPY file.txt /var/x\nCOPY payload /tmp/p/\nCOPY file.txt /run/\nCOPY payload /srv/app/sub/",
            "cat /var/x /tmp/p/sub/evil /run/file.txt /srv/app/sub/sub/evil",
            "file\npayload\nfile\npayload",
        ),
        # (its links resolve inside the destination, as dockerd's untar chrooted there: check a plain file)
        "add-through": ("ADD through.tar /srv/app/\nADD through.tar /var/", "cat /srv/app/plain", "plain"),
        "add-hardlink": ("ADD hard.tar /srv/app/sub/", "cat /srv/app/sub/hl", "pwned"),
        "workdir-run": (
            "WORKDIR /var/work\nRUN echo ran > here && cat /srv/app/keep\nWORKDIR /srv/app/sub/w",
            "cat /var/work/here",
            "ran",
        ),
    }
    for n, (step, (instructions, check, expected)) in enumerate(steps.items()):
        cli = docker if n % 2 == 0 else dockyard
        tag = unique(f"hostile-{step}").lower()
        env = {"env": CLASSIC} if cli is docker else {}
        (context / "Dockerfile").write_text(f"FROM {ref}\n{instructions}\n")
        built = cli("build", "-q", "-t", tag, str(context), timeout=120, **env)
        ok = _one_line_or_ok(built, f"build {step} ({kind})")
        host.assert_untouched(f"build {step} ({kind})")
        # what must work: a link where the copy has a directory is replaced by it; the rest follows the
        # image's links inside its root, which only a loop makes impossible; a hard link to a file
        # that is not in the archive's own tree never is
        must = step == "copy-nested" or (kind != "loop" and step != "add-hardlink")
        assert ok == must, f"build {step} ({kind}): {built.output}"
        if not ok:
            continue
        images.append(tag)
        name = _create(docker, names, tag)
        for path in check.split()[1:]:
            back = tmp_path / unique("back")
            seen = docker("cp", f"{name}:{path}", str(back), timeout=TIMEOUT)
            assert seen.returncode == 0, f"build {step} ({kind}): {seen.output}"
            assert back.read_text().strip() in expected.split("\n"), f"build {step} ({kind}) {path}"
        host.assert_untouched(f"build {step} ({kind}), read back")


def test_build_context_links_stay_in_the_context(docker, docker_client, host, images, tmp_path):
    """The client's context tar: a link to the host, a hard link through it and a file over the hard link
    are all resolved inside the context; a COPY of a link to /etc/shadow copies nothing of the host's."""
    dockerfile = b"FROM busybox\nCOPY shadow-link /copied\n"
    context = _tar(
        [("f", "Dockerfile", dockerfile), ("l", "a", str(host.decoy)), ("h", "hl", "a/sentinel")]
        + [
            ("f", "hl", b"pwned\n"),
            ("l", "shadow-link", "/etc/shadow"),
            ("l", "sentinel-link", f"{host.decoy}/sentinel"),
        ]
    )
    tag = unique("hostile-context").lower()
    try:
        output = list(
            docker_client.api.build(fileobj=io.BytesIO(context), custom_context=True, tag=tag, decode=True)
        )
    except docker_sdk.errors.APIError as e:
        assert "\n" not in str(e.explanation or "").strip(), e
    else:
        errors = [o for o in output if "error" in o]
        assert len(errors) <= 1, output
        if not errors:
            images.append(tag)
    host.assert_untouched("the build context")
    # a context link to the host's shadow or the decoy: resolved inside the context, so not found
    for link in ("shadow-link", "sentinel-link"):
        tag = unique("hostile-context").lower()
        plain = _tar(
            [
                ("f", "Dockerfile", f"FROM busybox\nCOPY {link} /copied\n".encode()),
                ("l", link, "/etc/shadow" if link == "shadow-link" else f"{host.decoy}/sentinel"),
            ]
        )
        output = list(
            docker_client.api.build(fileobj=io.BytesIO(plain), custom_context=True, tag=tag, decode=True)
        )
        errors = [o["error"] for o in output if "error" in o]
        assert errors and "file not found in build context" in errors[0], output
    host.assert_untouched("context links")


# --- a container process racing the engine --------------------------------------------------------------

SWAP_SOURCE = Path(__file__).with_name("swap_race.c")
SWAP = "swap-race"


@pytest.fixture(scope="module")
def swap_image(registry, tmp_path_factory) -> str:
    """busybox with swap_race.c (gcc -static) as /swap-race, pushed to the test registry."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (scripts/setup.sh --test installs it)")
    binary = tmp_path_factory.mktemp("swap") / SWAP
    done = subprocess.run(
        ["gcc", "-static", "-O2", "-Wall", "-o", str(binary), str(SWAP_SOURCE)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 and "cannot find -lc" in done.stderr:
        pytest.skip("no static libc for gcc -static (libc6-dev; scripts/setup.sh --test installs it)")
    assert done.returncode == 0, done.stderr
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(SWAP)
        data = binary.read_bytes()
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    config = {"config": {"Env": [testimages.PATH_ENV], "Cmd": ["sh"]}}
    image = testimages.build_from_tars([testimages.base_layer().tar, buf.getvalue()], config=config)
    repo = unique("test/swap-race")
    testimages.push_image(registry.address, repo, "latest", image)
    return f"{registry.address}/{repo}:latest"


RACE_ROUNDS = 150


def test_cp_and_export_against_a_swapping_container(docker, docker_client, swap_image, host, names):
    """The container exchanges /w/d (a directory holding `sentinel`) with a link to the host's decoy as
    fast as it can, while we copy into /w/d, read /w/d/sentinel and export: nothing lands in the decoy
    and nothing of the host's is read (CVE-2018-15664's class)."""
    pulled = docker("pull", swap_image, timeout=TIMEOUT)
    assert pulled.returncode == 0, pulled.output
    name = unique("swapper")
    names.append(name)
    started = docker("run", "-d", "--name", name, swap_image, f"/{SWAP}", str(host.decoy), timeout=TIMEOUT)
    assert started.returncode == 0, started.output
    until("the swapper ready", lambda: "ready" in docker("logs", name).stdout)
    container = docker_client.containers.get(name)
    leaks: list[str] = []
    for n in range(RACE_ROUNDS):
        data = _tar([("f", f"f{n}", b"race\n"), ("d", f"d{n}", b""), ("f", f"d{n}/g", b"race\n")])
        try:
            container.put_archive("/w/d", data)
        except docker_sdk.errors.APIError as e:
            assert "Traceback" not in str(e), e
        try:
            bits, _ = container.get_archive("/w/d/sentinel")
            leaks += _tar_leaks(b"".join(bits))
        except docker_sdk.errors.APIError as e:
            assert "Traceback" not in str(e), e
        if n % 30 == 0:
            leaks += _tar_leaks(b"".join(container.export()))
        assert not leaks, f"round {n}: read the host's file as {leaks}"
        host.assert_untouched(f"round {n}")
    killed = docker("rm", "-f", name, timeout=TIMEOUT)
    assert killed.returncode == 0, killed.output
    host.assert_untouched("after the swapper")
