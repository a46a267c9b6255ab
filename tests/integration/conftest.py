"""Integration fixtures: one real dockyardd and one real registry per test run, both stopped by PID.

Modules marked `pytest.mark.runtimes` run each test once per OCI runtime: their `daemon` is then the session's
daemon of that runtime (`--default-runtime runc` for "runc"), started at its first use; unmarked tests get
the built-in runtime's daemon."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import registry as registry_tool
import testimages
from harness import DOCKYARD, DaemonProcess, Result, run_cli

if os.geteuid() != 0:
    pytest.skip(
        "integration tests need root (real namespaces, mounts and a real daemon)", allow_module_level=True
    )


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dockyard-it-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def registry(workdir: Path) -> Iterator[registry_tool.RegistryProcess]:
    """Debian's docker-registry on a free loopback port, filled with images built from busybox."""
    reg = registry_tool.start_registry(workdir / "registry")
    try:
        for kind in ("busybox", "httpd"):
            image = testimages.build_image(kind)
            testimages.push_image(reg.address, f"library/{kind}", "latest", image)  # the docker.io mirror
            testimages.push_image(reg.address, f"test/{kind}", "latest", image)
        yield reg
    finally:
        reg.stop()


RUNTIMES = ("dockyard", "runc")  # the built-in runtime first: the default daemon


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "runtimes(*names): run each test on these OCI runtimes (default: built-in and runc)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("runtimes")
    if "daemon" in metafunc.fixturenames and marker is not None:
        # @pytest.mark.runtimes("dockyard") on a test narrows its module's marker
        metafunc.parametrize("daemon", marker.args or RUNTIMES, indirect=True, scope="session")


@pytest.fixture(scope="session", autouse=True)
def host_networking_cleanup() -> Iterator[None]:
    """Whatever daemon a test started (and killed, or left to a crash test): at the end of the run its
    process is stopped and its bridges and nftables table are gone."""
    yield
    for proc in DaemonProcess.instances:
        proc.stop()
        proc.remove_network()


@pytest.fixture(scope="session")
def daemons(workdir: Path, registry: registry_tool.RegistryProcess) -> Iterator[dict[str, DaemonProcess]]:
    """The session's daemons by default runtime, each started when first asked for."""
    started: dict[str, DaemonProcess] = {}
    yield started
    for proc in started.values():
        proc.stop()


@pytest.fixture(scope="session")
def daemon(
    request: pytest.FixtureRequest, daemons: dict[str, DaemonProcess], workdir: Path, registry
) -> DaemonProcess:
    runtime = getattr(request, "param", RUNTIMES[0])
    if runtime not in daemons:
        if runtime != RUNTIMES[0] and shutil.which(runtime) is None:
            pytest.skip(f"{runtime} is not installed")
        flags = ["--registry-mirror", registry.url]
        root = workdir / "daemon"
        if runtime != RUNTIMES[0]:
            flags += ["--default-runtime", runtime]
            root = workdir / f"daemon-{runtime}"
        daemons[runtime] = DaemonProcess(root, flags).start()
    return daemons[runtime]


@pytest.fixture
def docker(daemon: DaemonProcess):
    """The official docker CLI pointed at dockyardd."""

    def run(*args: str, **kwargs) -> Result:
        env = {"DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(daemon.root / "docker-config")}
        env.update(kwargs.pop("env", {}))
        return run_cli(["docker", *args], env=env, **kwargs)

    if shutil.which("docker") is None:
        pytest.fail("the official docker CLI is not installed (the test setup installs it)")
    return run


@pytest.fixture
def dockyard(daemon: DaemonProcess):
    """Our own CLI pointed at dockyardd."""

    def run(*args: str, **kwargs) -> Result:
        return run_cli([DOCKYARD, "-H", daemon.host, *args], **kwargs)

    return run


@pytest.fixture
def docker_client(daemon: DaemonProcess):
    import docker as docker_sdk

    client = docker_sdk.DockerClient(base_url=daemon.host, timeout=60)
    yield client
    client.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """When a test that used the daemon fails, show the daemon's log with the failure."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "daemon" in getattr(item, "fixturenames", ()):
        proc = item.funcargs.get("daemon") if hasattr(item, "funcargs") else None
        if isinstance(proc, DaemonProcess):
            report.sections.append(("dockyardd log (tail)", proc.log_tail(80)))


@pytest.fixture
def networks(docker) -> Iterator[list[str]]:
    """Networks a test makes: removed after it (after its containers, see `names`)."""
    created: list[str] = []
    yield created
    for name in created:
        docker("network", "rm", name)


@pytest.fixture
def names(docker, networks) -> Iterator[list[str]]:
    """Containers a test makes: removed (forced) after it, before its networks."""
    created: list[str] = []
    yield created
    if created:
        docker("rm", "-f", *created)
