"""dockyardd: the daemon process. Parses flags, loads daemon.json, takes the data root, serves the API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import grp
import logging
import os
import signal
import socket
import sys

from aiohttp import web

from . import __version__
from .api import build_app
from .engine import ConfigError, Daemon, DaemonConfig, build_config, read_config_file
from .engine.config import DEFAULT_CONFIG_FILE, LOG_LEVELS
from .engine.lock import DataRootLock

log = logging.getLogger("dockyard")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="dockyardd",
        usage="dockyardd [OPTIONS]",
        description="A self-sufficient runtime for containers.",
    )
    p.add_argument(
        "-H",
        "--host",
        action="append",
        dest="hosts",
        metavar="list",
        help="Daemon socket(s) to connect to (default unix:///var/run/dockyard.sock)",
    )
    p.add_argument(
        "--data-root",
        metavar="string",
        help='Root directory of persistent Dockyard state (default "/var/lib/dockyard")',
    )
    p.add_argument(
        "--exec-root",
        metavar="string",
        help='Root directory for execution state files (default "/run/dockyard")',
    )
    p.add_argument(
        "-p",
        "--pidfile",
        metavar="string",
        help='Path to use for daemon PID file (default "/var/run/dockyard.pid")',
    )
    p.add_argument(
        "-l",
        "--log-level",
        metavar="string",
        choices=LOG_LEVELS,
        help='Set the logging level ("debug"|"info"|"warn"|"error"|"fatal") (default "info")',
    )
    p.add_argument("-D", "--debug", action="store_const", const=True, help="Enable debug mode")
    p.add_argument(
        "--config-file", metavar="string", help=f'Daemon configuration file (default "{DEFAULT_CONFIG_FILE}")'
    )
    p.add_argument("-G", "--group", metavar="string", help='Group for the unix socket (default "dockyard")')
    p.add_argument(
        "--registry-mirror",
        action="append",
        dest="registry_mirrors",
        metavar="list",
        help="Preferred registry mirror",
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        dest="insecure_registries",
        metavar="list",
        help="Enable insecure registry communication",
    )
    p.add_argument(
        "--max-concurrent-downloads",
        type=int,
        metavar="int",
        help="Set the max concurrent downloads for each pull (default 3)",
    )
    p.add_argument(
        "--default-runtime", metavar="string", help='Default OCI runtime for containers (default "dockyard")'
    )
    p.add_argument(
        "--add-runtime",
        action="append",
        dest="add_runtimes",
        metavar="runtime",
        help="Register an additional OCI compatible runtime (name=path)",
    )
    p.add_argument(
        "--live-restore",
        action="store_const",
        const=True,
        help="Enable live restore of containers when the daemon stops",
    )
    p.add_argument(
        "--cpu-rt-period",
        type=int,
        metavar="int",
        help="Limit the CPU real-time period in microseconds for the parent cgroup for all containers",
    )
    p.add_argument(
        "--cpu-rt-runtime",
        type=int,
        metavar="int",
        help="Limit the CPU real-time runtime in microseconds for the parent cgroup for all containers",
    )
    p.add_argument("-b", "--bridge", metavar="string", help="Attach containers to a network bridge")
    p.add_argument("--bip", metavar="string", help="Specify network bridge IP")
    p.add_argument("-v", "--version", action="store_true", help="Print version information and quit")
    return p.parse_args(argv)


def load_config(args: argparse.Namespace) -> DaemonConfig:
    config_file = args.config_file or DEFAULT_CONFIG_FILE
    file_values = read_config_file(config_file, required=args.config_file is not None)
    flags = {
        "hosts": args.hosts,
        "data-root": args.data_root,
        "exec-root": args.exec_root,
        "pidfile": args.pidfile,
        "log-level": args.log_level,
        "debug": args.debug,
        "group": args.group,
        "registry-mirrors": args.registry_mirrors,
        "insecure-registries": args.insecure_registries,
        "max-concurrent-downloads": args.max_concurrent_downloads,
        "default-runtime": args.default_runtime,
        "add-runtime": args.add_runtimes,
        "live-restore": args.live_restore,
        "bridge": args.bridge,
        "bip": args.bip,
        "cpu-rt-period": args.cpu_rt_period,
        "cpu-rt-runtime": args.cpu_rt_runtime,
    }
    return build_config(file_values, flags, config_file)


class _LogFormatter(logging.Formatter):
    """The same shape as dockerd's log lines, so the two read alike side by side."""

    LEVELS = {"WARNING": "warning", "CRITICAL": "fatal"}

    def format(self, record: logging.LogRecord) -> str:
        level = self.LEVELS.get(record.levelname, record.levelname.lower())
        when = self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}"
        text = f'time="{when}" level={level} msg="{record.getMessage()}"'
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel({"warn": logging.WARNING, "fatal": logging.CRITICAL}.get(level, level.upper()))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _socket_in_use(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def open_unix_socket(path: str, group: str) -> socket.socket:
    """Bind the API socket: mode 0660, owned by the group when it exists (as Docker's docker group)."""
    if os.path.exists(path):
        if _socket_in_use(path):
            raise ConfigError(f"socket {path} is already in use by another daemon")
        os.unlink(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o117)  # no window in which the socket is world-accessible
    try:
        sock.bind(path)
    finally:
        os.umask(old_umask)
    gid = 0
    with contextlib.suppress(KeyError):
        gid = grp.getgrnam(group).gr_gid
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def write_pidfile(path: str) -> None:
    try:
        with open(path) as f:
            pid = int(f.read().strip() or 0)
        if pid and pid != os.getpid() and os.path.exists(f"/proc/{pid}"):
            raise ConfigError(f"pid file found, ensure dockyardd is not running or delete {path} (pid {pid})")
    except (FileNotFoundError, ValueError):
        pass
    os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}")
    os.replace(tmp, path)


async def serve(config: DaemonConfig) -> None:
    daemon = Daemon(config)
    app = build_app(daemon)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2)
    await runner.setup()
    sockets = [open_unix_socket(path, config.group) for path in _socket_paths(config)]
    try:
        for sock in sockets:
            await web.SockSite(runner, sock).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("API listen on %s", ", ".join(_socket_paths(config)))
        log.info("Daemon has completed initialization")
        await stop.wait()
        log.info("Processing signal, shutting down")
    finally:
        await runner.cleanup()
        await daemon.close()
        for sock, path in zip(sockets, _socket_paths(config), strict=True):
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _socket_paths(config: DaemonConfig) -> list[str]:
    from .engine.config import unix_socket_path

    return [unix_socket_path(h) for h in config.hosts]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.version:
        print(f"Dockyard version {__version__}")
        return 0
    try:
        config = load_config(args)
    except ConfigError as e:
        print(f"dockyardd: {e}", file=sys.stderr)
        return 1
    setup_logging(config.log_level)
    if os.geteuid() != 0:
        print("dockyardd: dockyardd needs to be started with root privileges", file=sys.stderr)
        return 1
    lock = DataRootLock(config.data_root)
    try:
        os.makedirs(config.data_root, mode=0o710, exist_ok=True)
        os.makedirs(config.exec_root, mode=0o700, exist_ok=True)
        lock.acquire()
        write_pidfile(config.pidfile)
    except (ConfigError, OSError) as e:
        lock.release()
        print(f"dockyardd: {e}", file=sys.stderr)
        return 1
    log.info("Starting up: dockyardd %s, data root %s, pid %d", __version__, config.data_root, os.getpid())
    try:
        asyncio.run(serve(config))
    except ConfigError as e:
        print(f"dockyardd: {e}", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(config.pidfile)
        lock.release()
    log.info("Daemon shutdown complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
