"""docker build (the classic builder) against a real dockyardd: through our CLI, the official CLI with
DOCKER_BUILDKIT=0 and docker-py; the images run; the cache; the bad cases with Docker's messages."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from pathlib import Path

import pytest
from harness import DaemonProcess, unique

CLASSIC = {"DOCKER_BUILDKIT": "0"}


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def inspect(docker, name: str) -> dict:
    result = docker("image", "inspect", name)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]


def steps(output: str) -> list[str]:
    """The build output cut into steps: each step's lines after its `Step N/M :` line."""
    out: list[str] = []
    for line in output.splitlines():
        if line.startswith("Step "):
            out.append("")
        elif out:
            out[-1] += line + "\n"
    return out


def mounts_under(path: Path) -> set[str]:
    prefix = str(path)
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f if line.split()[4].startswith(prefix)}


EVERY_INSTRUCTION = """\
# escape=\\
ARG BASE=busybox
FROM ${BASE}
ARG GREETING=hello
LABEL org.example.marker="{marker}" two=2
ENV APP_HOME=/srv/app \\
    MODE=${GREETING:-none}-${UNSET:-dflt}
WORKDIR $APP_HOME
COPY --chown=1:2 data/ ./data/
COPY one.txt two.txt ./
ADD bundle.tar /srv/unpacked/
RUN echo "$GREETING" > greeting.txt && rm /bin/true && mkdir -p /home/app && chown 1000:1000 /home/app
RUN ["sh", "-c", "echo exec-form > /srv/app/exec.txt"]
EXPOSE 8080 9090/udp
VOLUME ["/srv/volume"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD test -f /srv/app/greeting.txt
ONBUILD RUN echo triggered > /tmp/trigger.txt
SHELL ["/bin/sh", "-ec"]
USER 1000:1000
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo $MODE from $(pwd) as $(id -u); cat greeting.txt data/a.txt one.txt"]
"""


@pytest.fixture
def context(tmp_path: Path) -> Path:
    marker = uuid.uuid4().hex  # no cache hit from another test's image
    return write(
        tmp_path,
        {
            "Dockerfile": EVERY_INSTRUCTION.replace("{marker}", marker),
            "data/a.txt": "file a\n",
            "one.txt": "one\n",
            "two.txt": "two\n",
            "bundle.tar": tar_bytes({"inner/x.txt": b"from the tar\n"}),
            "ignored.log": "never sent\n",
            ".dockerignore": "*.log\n",
        },
    )


def test_every_instruction_through_our_cli(dockyard, docker, context: Path) -> None:
    tag = unique("every") + ":v1"
    result = dockyard("build", "--build-arg", "GREETING=hi", "-t", tag, str(context), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Sending build context to Docker daemon")
    assert "Step 1/20 : ARG BASE=busybox\n" in result.stdout
    assert " ---> Running in " in result.stdout and "Removing intermediate container" in result.stdout
    assert f"Successfully tagged {tag}\n" in result.stdout

    image = inspect(docker, tag)
    config = image["Config"]
    assert config["Entrypoint"] == ["/bin/sh", "-c"]
    assert config["User"] == "1000:1000" and config["WorkingDir"] == "/srv/app"
    assert "APP_HOME=/srv/app" in config["Env"] and "MODE=hi-dflt" in config["Env"]
    assert config["ExposedPorts"] == {"8080/tcp": {}, "9090/udp": {}}
    assert config["Volumes"] == {"/srv/volume": {}}
    assert config["StopSignal"] == "SIGINT"
    assert config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test -f /srv/app/greeting.txt"],
        "Interval": 30_000_000_000,
        "Timeout": 3_000_000_000,
        "Retries": 2,
    }
    assert config["OnBuild"] == ["RUN echo triggered > /tmp/trigger.txt"]
    assert config["Shell"] == ["/bin/sh", "-ec"]
    assert config["Labels"]["two"] == "2"

    history = json.loads(
        docker("history", "--no-trunc", "--format", "{{json .}}", tag).stdout.splitlines()[0]
    )
    assert history["CreatedBy"].startswith("/bin/sh -ec #(nop)  CMD")

    run = docker("run", "--rm", tag, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "hi-dflt from /srv/app as 1000\nhi\nfile a\none\n"
    files = docker(
        "run", "--rm", "--entrypoint", "sh", "-u", "0", tag, "-c",
        "stat -c '%u:%g %n' data/a.txt; cat exec.txt /srv/unpacked/inner/x.txt two.txt;"
        " ls /bin/true 2>&1; ls /srv/app",
        timeout=120,
    )  # fmt: skip
    assert "1:2 data/a.txt" in files.stdout
    assert "exec-form\nfrom the tar\ntwo\n" in files.stdout
    assert "No such file or directory" in files.stdout  # deleted in a RUN: a whiteout in the layer
    assert "ignored.log" not in files.stdout and ".dockerignore" not in files.stdout


def test_onbuild_triggers_run_in_a_child_build(dockyard, docker, context: Path, tmp_path: Path) -> None:
    parent = unique("onbuild-parent")
    assert dockyard("build", "-q", "-t", parent, str(context), timeout=300).returncode == 0
    child = write(tmp_path / "child", {"Dockerfile": f"FROM {parent}\nUSER 0\n"})
    result = dockyard("build", "-t", parent + "-child", str(child), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# Executing 1 build trigger\n" in result.stdout
    out = docker("run", "--rm", parent + "-child", "cat /tmp/trigger.txt")
    assert out.stdout == "triggered\n"
    assert inspect(docker, parent + "-child")["Config"]["OnBuild"] is None


MULTI_STAGE = """\
FROM busybox AS assets
LABEL marker={marker}
WORKDIR /out
COPY page.html index.html
RUN echo generated > gen.txt

FROM busybox AS unused
RUN exit 1

FROM busybox
COPY --from=assets /out/ /www/
COPY --from=0 /out/gen.txt /www/copy-by-index.txt
CMD ["cat", "/www/index.html", "/www/gen.txt", "/www/copy-by-index.txt"]
"""


def test_multi_stage_with_the_official_cli(docker, tmp_path: Path) -> None:
    ctx = write(
        tmp_path,
        {"Dockerfile": MULTI_STAGE.replace("{marker}", uuid.uuid4().hex), "page.html": "<p>hi</p>\n"},
    )
    tag = unique("multistage")
    # --target stops at a stage: only the first stage is built
    first = docker("build", "--target", "assets", "-t", tag + ":assets", str(ctx), env=CLASSIC, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Step 5/5 : RUN echo generated > gen.txt" in first.stdout
    result = docker("build", "-t", tag, str(ctx), env=CLASSIC, timeout=300)
    assert result.returncode != 0  # the unused stage still runs with the classic builder
    assert "The command '/bin/sh -c exit 1' returned a non-zero code: 1" in result.stderr
    (ctx / "Dockerfile").write_text(
        MULTI_STAGE.replace("{marker}", "x").replace("FROM busybox AS unused\nRUN exit 1\n", "")
    )
    result = docker("build", "-t", tag, str(ctx), env=CLASSIC, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    run = docker("run", "--rm", tag, timeout=120)
    assert run.stdout == "<p>hi</p>\ngenerated\ngenerated\n", run.stderr


def test_docker_py_build_and_cache(docker_client, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    ctx = write(
        tmp_path,
        {
            "Dockerfile": f"FROM busybox\nENV MARKER={marker}\nCOPY f.txt /f.txt\nRUN wc -c /f.txt\n",
            "f.txt": "x\n",
        },
    )
    tag = unique("dockerpy")
    image, logs = docker_client.images.build(path=str(ctx), tag=tag, rm=True)
    lines = [entry.get("stream", "") for entry in logs]
    assert "Step 4/4 : RUN wc -c /f.txt\n" in "".join(lines)
    assert any("2 /f.txt" in line for line in lines)
    assert f"{tag}:latest" in image.tags
    assert image.attrs["Config"]["Env"][-1] == f"MARKER={marker}"
    again, logs = docker_client.images.build(path=str(ctx), tag=tag)
    assert again.id == image.id
    assert "".join(entry.get("stream", "") for entry in logs).count(" ---> Using cache") == 3
    assert docker_client.containers.run(tag, "cat /f.txt", remove=True) == b"x\n"


def test_rebuild_uses_the_cache_and_a_changed_file_invalidates_from_its_copy(
    dockyard, tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex
    ctx = write(
        tmp_path,
        {
            "Dockerfile": (
                f"FROM busybox\nENV MARKER={marker}\nCOPY a.txt /a.txt\nRUN echo ran-a > /ran\n"
                "COPY b.txt /b.txt\nRUN echo ran-b >> /ran\nCMD cat /ran\n"
            ),
            "a.txt": "a\n",
            "b.txt": "b\n",
        },
    )
    tag = unique("cache")
    first = dockyard("build", "-t", tag, str(ctx), timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count("Using cache") == 0
    again = dockyard("build", "-t", tag, str(ctx), timeout=300)
    assert again.returncode == 0, again.stderr
    body = steps(again.stdout)
    assert all(" ---> Using cache" in step for step in body[1:]), again.stdout
    assert "Running in" not in again.stdout
    assert (
        again.stdout.split("Successfully built ")[1][:12] == first.stdout.split("Successfully built ")[1][:12]
    )

    (ctx / "b.txt").write_text("changed\n")
    changed = dockyard("build", "-t", tag, str(ctx), timeout=300)
    assert changed.returncode == 0, changed.stderr
    body = steps(changed.stdout)
    assert [" ---> Using cache" in step for step in body] == [False, True, True, True, False, False, False]
    assert "Running in" in body[5]


def test_no_cache_and_quiet(dockyard, daemon: DaemonProcess, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    ctx = write(tmp_path, {"Dockerfile": f"FROM busybox\nCOPY f /f\nRUN echo {marker}\n", "f": marker})
    first = dockyard("build", "-q", str(ctx), timeout=300)
    assert first.returncode == 0 and first.stdout.startswith("sha256:")
    quiet = dockyard("build", "-q", "--no-cache", str(ctx), timeout=300)
    assert quiet.returncode == 0
    assert quiet.stdout.startswith("sha256:") and len(quiet.stdout.strip()) == 71
    assert quiet.stdout != first.stdout  # new images (the same COPY layer, built again)
    # nothing left in the ingest dir: contexts, layer tars (one that was already stored too)
    assert not list((daemon.data_root / "image" / "content" / "ingest").iterdir())


def test_intermediate_images_hide_and_go_with_their_image(docker, tmp_path: Path) -> None:
    """As dockerd: a build's untagged steps show only with `images -a`, are not dangling, and `rmi` of the
    built image deletes them (its chain of untagged parents) too."""
    marker = uuid.uuid4().hex
    ctx = write(tmp_path, {"Dockerfile": f"FROM busybox\nRUN echo {marker} > /m\nENV M={marker}\nRUN true\n"})
    tag = unique("layered").lower()
    assert (
        docker("build", "-q", "-t", tag, str(ctx), timeout=300, env={"DOCKER_BUILDKIT": "0"}).returncode == 0
    )
    history = docker("history", "-q", tag).stdout.split()
    steps = [h for h in history if h != "<missing>"][1:4]  # the image's own parents: RUN, ENV, RUN
    assert len(steps) == 3, history
    shown = docker("images", "-q", "--no-trunc").stdout
    everything = docker("images", "-aq").stdout.split()
    dangling = docker("images", "-q", "-f", "dangling=true").stdout.split()
    for step in steps[:2]:
        assert step not in shown and step in everything and step not in dangling
    removed = docker("rmi", tag)
    assert removed.returncode == 0, removed.output
    deleted = [
        line.split()[-1][len("sha256:") :][:12] for line in removed.stdout.splitlines() if "Deleted" in line
    ]
    for step in steps[:2]:
        assert step in deleted, removed.stdout
    assert not set(steps[:2]) & set(docker("images", "-aq").stdout.split())


@pytest.mark.parametrize("cli", ["dockyard", "docker"])
def test_bad_input(cli: str, dockyard, docker, daemon: DaemonProcess, tmp_path: Path) -> None:
    run = dockyard if cli == "dockyard" else (lambda *a, **k: docker(*a, env=CLASSIC, **k))

    def build(dockerfile: str | None, *flags: str, files: dict[str, str] | None = None) -> tuple[int, str]:
        ctx = tmp_path / uuid.uuid4().hex
        ctx.mkdir()
        write(ctx, files or {})
        if dockerfile is not None:
            (ctx / "Dockerfile").write_text(dockerfile)
        result = run("build", *flags, str(ctx), timeout=300)
        return result.returncode, result.stderr

    code, err = build(None)
    assert (
        code == 1
        and "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat" in err
    )
    code, err = build("FROM busybox\nFOO bar\n")
    assert code == 1
    assert err.strip().endswith(
        "Error response from daemon: dockerfile parse error line 2: unknown instruction: FOO"
    )
    code, err = build("FROM busybox\nCOPY missing.txt /\n")
    assert (code, err.strip().splitlines()[-1]) == (
        1,
        "COPY failed: file not found in build context or excluded by .dockerignore: "
        "stat missing.txt: file does not exist",
    )
    code, err = build("FROM busybox\nCOPY ../outside /\n")
    assert (code, err.strip().splitlines()[-1]) == (
        1,
        "COPY failed: forbidden path outside the build context: ../outside ()",
    )
    code, err = build(
        "FROM busybox\nCOPY secret.log /\n", files={"secret.log": "x", ".dockerignore": "*.log"}
    )
    assert code == 1 and "file not found in build context or excluded by .dockerignore" in err

    containers_before = set(docker("ps", "-aq", "--no-trunc").stdout.split())
    mounts_before = mounts_under(daemon.data_root)
    code, err = build(f"FROM busybox\nRUN echo {uuid.uuid4().hex}; echo oops >&2; exit 3\n")
    assert code == 3
    assert "The command '/bin/sh -c echo" in err and "returned a non-zero code: 3" in err
    assert set(docker("ps", "-aq", "--no-trunc").stdout.split()) == containers_before
    assert mounts_under(daemon.data_root) == mounts_before

    code, err = build("FROM no-such-namespace/no-such-image:1\n")
    assert code == 1 and err.strip()
    code, err = build("FROM busybox\n", "--target", "nope")
    assert code == 1 and "failed to reach build target nope in Dockerfile" in err


def test_dockerfile_outside_the_context_with_the_official_cli(docker, tmp_path: Path) -> None:
    """The CLI sends the Dockerfile under a random name in a tar that ends right after its last file's
    data (no end-of-archive blocks): dockerd reads it, so must we; the renamed Dockerfile and the
    .dockerignore the CLI adds stay out of the context."""
    ctx = write(tmp_path / "ctx", {"f.txt": "in the context\n"})
    dockerfile = write(tmp_path / "elsewhere", {"Dockerfile": "FROM busybox\nCOPY . /ctx/\nCMD ls -A /ctx\n"})
    tag = unique("outside")
    result = docker(
        "build", "-f", str(dockerfile / "Dockerfile"), "-t", tag, str(ctx), env=CLASSIC, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Step 2/3 : COPY . /ctx/" in result.stdout
    run = docker("run", "--rm", tag, timeout=120)
    assert run.stdout == "f.txt\n", run.stderr


def _owned_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("x.txt")
        info.size, info.uid, info.gid = 2, 7, 8
        tar.addfile(info, io.BytesIO(b"x\n"))
    return buf.getvalue()


def test_config_details_as_dockerd_makes_them(docker, tmp_path: Path) -> None:
    """Compared with dockerd 20.10's classic builder: a HEALTHCHECK keeps the fields the one before set
    and it leaves unset (dockerd's container create merges them into the builder's state); an absolute
    WORKDIR is kept as written; EXPOSE's words are sorted as written, before expansion; ADD --chown does
    not apply to an unpacked archive."""
    marker = uuid.uuid4().hex
    ctx = write(
        tmp_path,
        {
            "Dockerfile": (
                f"FROM busybox\nLABEL marker={marker}\n"
                "HEALTHCHECK --interval=5s --retries=4 CMD true\n"
                "HEALTHCHECK --timeout=2s CMD false\n"
                "WORKDIR /abs/\nWORKDIR rel\n"
                "EXPOSE ${PORT:-80} ${P2:-81/udp}\n"
                "ADD --chown=1:1 owned.tar /unpacked/\n"
            ),
            "owned.tar": _owned_tar(),
        },
    )
    tag = unique("details")
    result = docker("build", "-t", tag, str(ctx), env=CLASSIC, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Note: overriding previous HEALTHCHECK: [CMD-SHELL true]\n" in result.stdout
    config = inspect(docker, tag)["Config"]
    assert config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "false"],
        "Interval": 5_000_000_000,
        "Timeout": 2_000_000_000,
        "Retries": 4,
    }
    assert config["WorkingDir"] == "/abs/rel"
    assert config["ExposedPorts"] == {"80/tcp": {}, "81/udp": {}}
    created_by = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag).stdout.splitlines()
    assert "/bin/sh -c #(nop) WORKDIR /abs/" in created_by
    assert "/bin/sh -c #(nop)  EXPOSE 81/udp 80" in created_by
    owners = docker("run", "--rm", tag, "stat", "-c", "%u:%g %n", "/unpacked", "/unpacked/x.txt", timeout=120)
    assert owners.stdout == "0:0 /unpacked\n7:8 /unpacked/x.txt\n", owners.stderr


def test_workdir_on_scratch_makes_the_directory(docker, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    ctx = write(
        tmp_path, {"Dockerfile": f"FROM scratch\nLABEL m={marker}\nWORKDIR /app\nCOPY f /app/\n", "f": "x"}
    )
    tag = unique("scratch-workdir")
    result = docker("build", "-t", tag, str(ctx), env=CLASSIC, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(inspect(docker, tag)["RootFS"]["Layers"]) == 2  # WORKDIR's /app, then COPY's file
    archive = tmp_path / "image.tar"
    saved = docker("save", "-o", str(archive), tag)
    assert saved.returncode == 0, saved.stderr
    with tarfile.open(archive) as image:
        manifest = json.load(image.extractfile("manifest.json"))[0]
        names = [
            sorted(m.name for m in tarfile.open(fileobj=image.extractfile(layer)))
            for layer in manifest["Layers"]
        ]
    assert names == [["app"], ["app", "app/f"]]


@pytest.mark.parametrize(
    ("dockerfile", "last_line", "streamed"),
    [
        # dockerd's line-level parser: no line number
        (
            "FROM busybox\nENV A\n",
            "Error response from daemon: failed to parse Dockerfile: ENV must have two arguments",
            False,
        ),
        # HEALTHCHECK is checked when parsed: an error response, before any step runs
        (
            "FROM busybox\nHEALTHCHECK --interval=1x CMD true\n",
            "Error response from daemon: dockerfile parse error line 2: "
            'time: unknown unit "x" in duration "1x"',
            False,
        ),
        ("FROM busybox\nEXPOSE 80/xyz\n", "Invalid proto: xyz", True),
        ("FROM busybox\nWORKDIR $NOPE\n", "cannot normalize nothing", True),
    ],
)
def test_error_texts_as_dockerd(
    docker, tmp_path: Path, dockerfile: str, last_line: str, streamed: bool
) -> None:
    ctx = write(tmp_path, {"Dockerfile": dockerfile})
    result = docker("build", str(ctx), env=CLASSIC, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == last_line
    assert ("Step 2/2 :" in result.stdout) == streamed, result.stdout
