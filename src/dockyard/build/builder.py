"""The classic builder: a Dockerfile's stages run step by step, each step committing an image.

A filesystem step (RUN, COPY, ADD, WORKDIR) changes a rootfs stacked on the current image and commits
its diff as a new layer; RUN runs in a real container with the daemon's runtime, COPY/ADD/WORKDIR
write into a rootfs the builder mounts itself. A metadata step (ENV, CMD, LABEL, ...) changes only the
config: a new image with an `empty_layer` history entry. Every step's image is kept, with its parent
and the step's `container_config`: that is the cache (see cache.py), looked up before each step.

The stream the client sees is the classic builder's, line for line: `Step N/M : <instruction>`,
` ---> Running in <id>`, the step's output (stderr in red), `Removing intermediate container <id>`,
` ---> <image>` or ` ---> Using cache`, an `aux` ID per stage, `Successfully built`/`tagged`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..containers.service import ContainerError, ContainerService
from ..distribution import Platform, RegistryError
from ..engine.events import EventBus
from ..goarch import go_arch
from ..images import ImageError
from ..images.archive import go_json
from ..images.changes import container_config
from ..images.service import ImageService, NoSuchImage
from ..images.store import ImageRecord
from ..linux.inroot import RootDir
from ..reference import InvalidReference, Reference, parse_reference
from ..units import go_duration
from .cache import find_cached
from .context import BuildContext, ContextError, SourceFile, resolve_sources, source_hash
from .copying import CopyError, copy_source, make_workdir, parse_chown
from .dockerfile import (
    Dockerfile,
    DockerfileError,
    Instruction,
    Stage,
    health_config,
    parse,
    parse_instruction,
)
from .layer import write_layer
from .shell_words import Lex, ShellWordError, env_map

log = logging.getLogger(__name__)

__all__ = ["BuildError", "BuildOptions", "Builder"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]
BUILTIN_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy")
BUILTIN_ARGS += ("NO_PROXY", "no_proxy")
_STDERR_START, _STDERR_END = "\x1b[91m", "\x1b[0m"

Send = Callable[[dict[str, Any]], None]
Puller = Any  # distribution.Puller (resolve, fetch)


class BuildError(Exception):
    """A failed build. `status`: the HTTP status when nothing was streamed yet; `code`: the exit code the
    CLI takes from the error line (a failing RUN's)."""

    def __init__(self, message: str, status: int = 500, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    dockerfile: str = ""
    build_args: dict[str, str | None] = field(default_factory=dict)
    no_cache: bool = False
    pull: bool = False
    target: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    remove: bool = True
    force_remove: bool = False
    platform: str = ""
    network_mode: str = ""
    auth: dict[str, Any] = field(default_factory=dict)  # registry -> auth config, for FROM pulls


class _BuildArgs:
    """ARG values: declared per stage (allowed), defaults, meta ARGs before FROM, --build-arg values."""

    def __init__(self, from_options: dict[str, str | None]) -> None:
        self.options = from_options
        self.allowed: dict[str, str | None] = {}
        self.meta: dict[str, str | None] = {}
        self.referenced: set[str] = set()

    def clone_for_stage(self) -> _BuildArgs:
        other = _BuildArgs(self.options)
        other.meta = dict(self.meta)
        other.referenced = set(self.referenced)
        return other

    def add(self, key: str, value: str | None) -> None:
        self.allowed[key] = value
        self.referenced.add(key)

    def _value(self, key: str, mapping: dict[str, str | None]) -> str | None:
        if self.options.get(key) is not None:
            return self.options[key]
        default = mapping.get(key)
        if default is None:
            return self.meta.get(key)
        return default

    def _all(self, mapping: dict[str, str | None]) -> dict[str, str]:
        out = {}
        for key in [*mapping, *BUILTIN_ARGS]:
            value = self._value(key, mapping)
            if value is not None and (key in mapping or self.options.get(key) is not None):
                out[key] = value
        return out

    def all_allowed(self) -> dict[str, str]:
        return self._all(self.allowed)

    def all_meta(self) -> dict[str, str]:
        return self._all(self.meta)

    def filter_allowed(self, env: list[str]) -> list[str]:
        """The allowed args the config's env does not already set, as KEY=value."""
        keys = env_map(env)
        return [f"{k}={v}" for k, v in sorted(self.all_allowed().items()) if k not in keys]

    def referenced_or_not_builtin(self, key: str) -> bool:
        return key in self.allowed or key not in BUILTIN_ARGS


@dataclass
class _State:
    """The dispatch state of the stage being built."""

    run_config: dict[str, Any]
    image_id: str  # "" for scratch
    image_config: dict[str, Any]  # the current image's config blob, parsed ({} for scratch)
    args: _BuildArgs
    stage_name: str = ""
    maintainer: str = ""
    cmd_set: bool = False
    cache_busted: bool = False


@dataclass
class _StageResult:
    name: str
    image_id: str


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _go_list(values: list[str] | None, quoted: bool) -> str:
    """Go's %q (quoted) or %v of a []string."""
    if not values:
        return "[]"
    if quoted:
        return "[" + " ".join(_go_string(v) for v in values) + "]"
    return "[" + " ".join(values) + "]"


def _go_string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _go_rune(n: int) -> str:
    if 32 <= n < 127:
        ch = chr(n)
        return "'\\''" if ch == "'" else ("'\\\\'" if ch == "\\" else f"'{ch}'")
    return f"'\\x{n:02x}'" if n < 256 else f"'\\u{n:04x}'"


def _healthcheck_text(check: dict[str, Any]) -> str:
    fields = [
        _go_list(check.get("Test"), quoted=True),
        _go_string(go_duration(check.get("Interval") or 0)),
        _go_string(go_duration(check.get("Timeout") or 0)),
        _go_string(go_duration(check.get("StartPeriod") or 0)),
        _go_rune(check.get("Retries") or 0),
    ]
    return "&{" + " ".join(fields) + "}"


def _now() -> str:
    ns = time.time_ns()
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9))
    fraction = f"{ns % 10**9:09d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


def _signal_ok(name: str) -> bool:
    text = name.upper()
    if text.isdigit():
        return 0 < int(text) < 65
    text = text.removeprefix("SIG")
    if text.startswith("RTMIN") or text.startswith("RTMAX"):
        return True
    return hasattr(signal, "SIG" + text)


class Builder:
    def __init__(
        self, images: ImageService, containers: ContainerService, puller: Puller, events: EventBus
    ) -> None:
        self.images = images
        self.containers = containers
        self.puller = puller
        self.events = events

    # --- the build -------------------------------------------------------------------------------

    def prepare(self, context: BuildContext, options: BuildOptions) -> tuple[Dockerfile, list[Reference]]:
        """Everything that is answered with a plain HTTP error: the Dockerfile, its syntax, the tags and
        the target (dockerd checks these before it streams anything)."""
        tags = self._sanitize_tags(options.tags)
        try:
            text, _ = context.read_dockerfile(options.dockerfile)
        except ContextError as e:
            raise BuildError(str(e), e.status) from None
        try:
            dockerfile = parse(text)
        except DockerfileError as e:
            raise BuildError(str(e), 400) from None
        if not dockerfile.stages:
            raise BuildError("No image was generated. Is your Dockerfile empty?", 500)
        if options.target:
            names = [s.name for s in dockerfile.stages]
            if options.target.lower() not in names:
                raise BuildError(f"failed to reach build target {options.target} in Dockerfile", 400)
            dockerfile.stages = dockerfile.stages[: names.index(options.target.lower()) + 1]
        for key in sorted(options.labels):
            text = f"LABEL {key}={options.labels[key]}"
            label = Instruction("label", [key, options.labels[key]], text, 0)
            label.flags = ["--no-expand"]  # --label values are taken literally
            dockerfile.stages[-1].commands.append(label)
        return dockerfile, tags

    def _sanitize_tags(self, names: list[str]) -> list[Reference]:
        out: list[Reference] = []
        seen: set[str] = set()
        for name in names:
            if not name:
                continue
            try:
                ref = parse_reference(name, default_tag=None)
            except InvalidReference as e:
                raise BuildError(str(e), 400) from None
            if ref.digest:
                raise BuildError("build tag cannot contain a digest", 400)
            if not ref.tag:
                ref = ref.with_tag("latest")
            if str(ref) not in seen:
                seen.add(str(ref))
                out.append(ref)
        return out

    async def build(
        self,
        context: BuildContext,
        dockerfile: Dockerfile,
        tags: list[Reference],
        options: BuildOptions,
        send: Send,
    ) -> str:
        """Run the stages; returns the final image ID. Raises BuildError (after output has started)."""
        run = _Run(self, context, dockerfile, options, send)
        image_id = await run.execute()
        send({"stream": f"Successfully built {_short(image_id)}\n"})
        for ref in tags:
            await self.images.tag(image_id, str(ref))
            self.events.emit("image", "tag", image_id, name=ref.familiar())
            send({"stream": f"Successfully tagged {ref.familiar()}\n"})
        return image_id


class _Run:
    """One build: the dispatch loop and the steps."""

    def __init__(
        self,
        builder: Builder,
        context: BuildContext,
        dockerfile: Dockerfile,
        options: BuildOptions,
        send: Send,
    ) -> None:
        self.b = builder
        self.images = builder.images
        self.containers = builder.containers
        self.context = context
        self.dockerfile = dockerfile
        self.options = options
        self.send = send
        self.lex = Lex(dockerfile.escape)
        self.stages: list[_StageResult] = []
        self.step = 1
        self.total = len(dockerfile.meta_args) + sum(1 + len(s.commands) for s in dockerfile.stages)
        self.platform = Platform.parse(options.platform) if options.platform else None

    def out(self, text: str) -> None:
        self.send({"stream": text})

    def print_step(self, text: str) -> None:
        self.out(f"Step {self.step}/{self.total} : {text}")
        self.out("\n")
        self.step += 1

    async def execute(self) -> str:
        for warning in self.dockerfile.warnings:
            self.out(warning + "\n")
        args = _BuildArgs(self.options.build_args)
        for meta in self.dockerfile.meta_args:
            self.print_step(meta.original)
            values = self.args_of(meta)
            for key, value in values:
                if value is not None:
                    value = self.expand(value, [f"{k}={v}" for k, v in args.all_allowed().items()])
                args.add(key, value)
                args.meta[key] = value
        state: _State | None = None
        for stage in self.dockerfile.stages:
            if stage.name and any(s.name == stage.name for s in self.stages):
                raise BuildError(f"{stage.name} stage name already used", 400)
            self.print_step(stage.source_code)
            state = await self.begin_stage(stage, args)
            self.out(f" ---> {_short(state.image_id)}\n")
            for inst in stage.commands:
                self.print_step(inst.original)
                await self.dispatch(state, inst)
                state.run_config["Image"] = state.image_id
                self.out(f" ---> {_short(state.image_id)}\n")
            if state.image_id:
                self.send({"aux": {"ID": state.image_id}})
            args.referenced |= state.args.referenced
            self.stages.append(_StageResult(stage.name, state.image_id))
        unused = [k for k in self.options.build_args if k not in BUILTIN_ARGS and k not in args.referenced]
        if unused:
            self.out(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        if state is None or not state.image_id:
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        return state.image_id

    # --- helpers ---------------------------------------------------------------------------------

    def expand(self, word: str, env: list[str]) -> str:
        try:
            return self.lex.process_word(word, env)
        except ShellWordError as e:
            raise BuildError(str(e), 400) from None

    def env_for(self, state: _State) -> list[str]:
        env = list(state.run_config.get("Env") or [])
        return env + state.args.filter_allowed(env)

    def args_of(self, inst: Instruction) -> list[tuple[str, str | None]]:
        out = []
        for arg in inst.args:
            key, sep, value = arg.partition("=")
            out.append((key, value if sep else None))
        return out

    def shell(self, state: _State) -> list[str]:
        return list(state.run_config.get("Shell") or DEFAULT_SHELL)

    def cmd_line(self, state: _State, inst: Instruction) -> list[str]:
        if inst.json_form:
            return list(inst.args)
        return [*self.shell(state), *inst.args] if inst.args else self.shell(state)

    # --- FROM ------------------------------------------------------------------------------------

    async def begin_stage(self, stage: Stage, args: _BuildArgs) -> _State:
        meta_env = [f"{k}={v}" for k, v in args.all_meta().items()]
        name = self.expand(stage.base_name, meta_env)
        if not name:
            raise BuildError(f"base name ({stage.base_name}) should not be blank", 400)
        platform = self.platform
        if stage.platform:
            try:
                platform = Platform.parse(self.expand(stage.platform, meta_env))
            except ValueError as e:
                raise BuildError(f"failed to parse platform {stage.platform}: {e}", 400) from None
        image_id, config = await self.from_image(name, platform)
        run_config = dict(config.get("config") or {})
        env = list(run_config.get("Env") or [])
        if not any(e.partition("=")[0] == "PATH" for e in env):
            env.append(f"PATH={DEFAULT_PATH}")
        run_config["Env"] = env
        run_config["OpenStdin"] = False
        run_config["StdinOnce"] = False
        run_config["Image"] = image_id
        state = _State(run_config, image_id, config, args.clone_for_stage(), stage.name)
        if not image_id:
            state.image_config = {
                "architecture": (platform.architecture if platform else "") or go_arch(),
                "os": "linux",
            }
        triggers = list(run_config.get("OnBuild") or [])
        if triggers:
            run_config["OnBuild"] = None
            self.out(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            for trigger in triggers:
                try:
                    inst = parse_instruction(trigger, 0, self.dockerfile.escape)
                except DockerfileError as e:
                    raise BuildError(str(e), 400) from None
                await self.dispatch(state, inst)
                state.run_config["Image"] = state.image_id
        return state

    async def from_image(self, name: str, platform: Platform | None) -> tuple[str, dict[str, Any]]:
        for result in self.stages:
            if result.name and result.name == name.lower():
                return result.image_id, self.config_of(result.image_id)
        if name == "scratch":
            return "", {}
        if not self.options.pull:
            try:
                record = self.images.get(name)
                return record.id, self.images.config(record)
            except NoSuchImage:
                pass
            except ImageError as e:
                raise BuildError(str(e), 400) from None
        record = await self.pull(name, platform)
        return record.id, self.images.config(record)

    def config_of(self, image_id: str) -> dict[str, Any]:
        return self.images.config(self.images.get(image_id)) if image_id else {}

    async def pull(self, name: str, platform: Platform | None) -> ImageRecord:
        try:
            ref = parse_reference(name)
        except InvalidReference as e:
            raise BuildError(str(e), 400) from None
        auth = self.options.auth.get(ref.domain) or self.options.auth.get(
            "https://index.docker.io/v1/" if ref.domain == "docker.io" else ref.domain
        )
        try:
            plan = await self.b.puller.resolve(ref, platform, auth)
            record, status = await self.b.puller.fetch(plan, auth, self.send)
        except (ImageError, RegistryError) as e:
            raise BuildError(str(e)) from None
        self.send({"status": status})
        self.b.events.emit("image", "pull", ref.familiar(), name=ref.familiar())
        return record

    # --- dispatch --------------------------------------------------------------------------------

    async def dispatch(self, state: _State, inst: Instruction) -> None:
        k = inst.keyword
        env = self.env_for(state)
        rc = state.run_config
        if k == "env":
            parts = []
            new_env = list(rc.get("Env") or [])
            for i in range(0, len(inst.args), 2):
                key = self.expand(inst.args[i], env)
                value = self.expand(inst.args[i + 1], env)
                entry = f"{key}={value}"
                parts.append(entry)
                for j, existing in enumerate(new_env):
                    if existing.partition("=")[0] == key:
                        new_env[j] = entry
                        break
                else:
                    new_env.append(entry)
            rc["Env"] = new_env
            await self.commit_config(state, "ENV " + " ".join(parts))
        elif k == "maintainer":
            state.maintainer = inst.args[0]
            await self.commit_config(state, "MAINTAINER " + inst.args[0])
        elif k == "label":
            literal = "--no-expand" in inst.flags
            labels = dict(rc.get("Labels") or {})
            parts = []
            for i in range(0, len(inst.args), 2):
                key, value = inst.args[i], inst.args[i + 1]
                if not literal:
                    key, value = self.expand(key, env), self.expand(value, env)
                labels[key] = value
                parts.append(f"{key}={value}")
            rc["Labels"] = labels
            await self.commit_config(state, "LABEL " + " ".join(parts))
        elif k in ("copy", "add"):
            await self.copy(state, inst, env)
        elif k == "onbuild":
            expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", inst.original)
            rc["OnBuild"] = [*(rc.get("OnBuild") or []), expression]
            await self.commit_config(state, "ONBUILD " + expression)
        elif k == "workdir":
            await self.workdir(state, self.expand(inst.args[0], env))
        elif k == "run":
            await self.run(state, inst)
        elif k == "cmd":
            rc["Cmd"] = self.cmd_line(state, inst)
            await self.commit_config(state, "CMD " + _go_list(rc["Cmd"], quoted=True))
            if inst.args:
                state.cmd_set = True
        elif k == "healthcheck":
            check = self.healthcheck(inst)
            old = rc.get("Healthcheck")
            if old and old.get("Test") and old["Test"][0] != "NONE":
                self.out(f"Note: overriding previous HEALTHCHECK: {_go_list(old['Test'], quoted=False)}\n")
            rc["Healthcheck"] = check
            await self.commit_config(state, "HEALTHCHECK " + _healthcheck_text(check))
        elif k == "entrypoint":
            entrypoint = self.cmd_line(state, inst) if inst.args or not inst.json_form else []
            rc["Entrypoint"] = entrypoint or None
            if not state.cmd_set:
                rc["Cmd"] = None
            await self.commit_config(state, "ENTRYPOINT " + _go_list(rc["Entrypoint"], quoted=True))
        elif k == "expose":
            ports: list[str] = []
            for word in inst.args:
                try:
                    ports += self.lex.process_words(word, env)
                except ShellWordError as e:
                    raise BuildError(str(e), 400) from None
            exposed = dict(rc.get("ExposedPorts") or {})
            for port in ports:
                for spec in _port_specs(port):
                    exposed[spec] = {}
            rc["ExposedPorts"] = exposed
            await self.commit_config(state, "EXPOSE " + " ".join(ports))  # (words sorted when parsed)
        elif k == "user":
            rc["User"] = self.expand(inst.args[0], env)
            await self.commit_config(state, f"USER {rc['User']}")
        elif k == "volume":
            volumes = dict(rc.get("Volumes") or {})
            values = [
                self.expand(v, env).strip() if not inst.json_form else self.expand(v, env) for v in inst.args
            ]
            for v in values:
                if not v:
                    raise BuildError("VOLUME specified can not be an empty string", 400)
                volumes[v] = {}
            rc["Volumes"] = volumes
            await self.commit_config(state, "VOLUME " + _go_list(values, quoted=False))
        elif k == "stopsignal":
            sig = self.expand(inst.args[0], env)
            if not _signal_ok(sig):
                raise BuildError(f"Invalid signal: {sig}", 400)
            rc["StopSignal"] = sig
            await self.commit_config(state, f"STOPSIGNAL {sig}")
        elif k == "arg":
            parts = []
            for key, value in self.args_of(inst):
                key = self.expand(key, env)
                if value is not None:
                    value = self.expand(value, env)
                state.args.add(key, value)
                parts.append(key if value is None else f"{key}={value}")
            await self.commit_config(state, "ARG " + " ".join(parts))
        elif k == "shell":
            rc["Shell"] = list(inst.args)
            await self.commit_config(state, "SHELL " + _go_list(rc["Shell"], quoted=False))
        else:  # pragma: no cover - the parser refuses unknown instructions
            raise BuildError(f"unknown instruction: {k.upper()}", 400)

    def healthcheck(self, inst: Instruction) -> dict[str, Any]:
        try:  # (checked when parsed; an ONBUILD trigger's is checked only now)
            return health_config(inst)
        except DockerfileError as e:
            raise BuildError(str(e), 400) from None

    # --- commits ---------------------------------------------------------------------------------

    def probe(self, state: _State, step_config: dict[str, Any]) -> bool:
        """A cache hit moves the state to the cached image and says ` ---> Using cache`."""
        if self.options.no_cache or state.cache_busted:
            return False
        candidates = []
        for record in self.images.store.images.values():
            parent = record.extra.get("parent", "")
            if parent != state.image_id or (not parent and not record.extra.get("built")):
                continue
            try:
                config = self.images.config(record)
            except (OSError, ValueError):
                continue
            candidates.append(
                (record.id, parent, config.get("created", ""), config.get("container_config") or {})
            )
        cached = find_cached(state.image_id, step_config, candidates)
        if not cached:
            state.cache_busted = True
            return False
        self.out(" ---> Using cache\n")
        state.image_id = cached
        state.image_config = self.config_of(cached)
        return True

    def comment_config(self, state: _State, comment: str, single: bool = False) -> dict[str, Any]:
        step = dict(state.run_config)
        step["Cmd"] = (
            [*self.shell(state), "#(nop) " + comment] if single else [*self.shell(state), "#(nop) ", comment]
        )
        return step

    async def commit_config(self, state: _State, comment: str) -> None:
        """A metadata step: a container is created (and removed) as dockerd does, the image gets an
        empty layer."""
        step = self.comment_config(state, comment)
        if self.probe(state, step):
            return
        self.merge_image_config(state, step)
        container_id = await self.create_container(state, step)
        step = dict(step, Hostname=container_id[:12])
        await self.commit(state, step, None, container_id)
        await self.remove_container(container_id)

    def merge_image_config(self, state: _State, step: dict[str, Any]) -> None:
        """What dockerd's container create does to a step's config (its merge() with the image's): nil
        Labels become a map, and a HEALTHCHECK's unset fields are taken from the image's. The builder's
        state shares the Healthcheck with the step (a Go pointer), so the image keeps the merged one:
        a new `HEALTHCHECK CMD x` keeps the --retries of the one before. Only for steps whose container
        is the step's config (metadata steps, WORKDIR), only on a cache miss, never on scratch."""
        if not state.image_id:
            return
        image = state.image_config.get("config") or {}
        if step.get("Labels") is None:
            step["Labels"] = dict(image.get("Labels") or {})
        ours, theirs = step.get("Healthcheck"), image.get("Healthcheck")
        if ours and theirs:
            merged = {}
            for key in ("Test", "Interval", "Timeout", "StartPeriod", "Retries"):  # Go's field order
                value = ours.get(key) or theirs.get(key)
                if value:
                    merged[key] = value
            step["Healthcheck"] = state.run_config["Healthcheck"] = merged

    async def create_container(self, state: _State, config: dict[str, Any]) -> str:
        if not state.image_id:
            container_id = secrets.token_hex(32)  # nothing to create a container from (scratch)
        else:
            body = {k: v for k, v in config.items() if k != "Image"}
            body["Image"] = state.image_id
            body["HostConfig"] = self.host_config()
            try:
                container_id, warnings = await asyncio.to_thread(self.containers.create, "", body)
            except ContainerError as e:
                raise BuildError(str(e), getattr(e, "status", 500)) from None
            for warning in warnings:
                self.out(f" ---> [Warning] {warning}\n")
        self.out(f" ---> Running in {container_id[:12]}\n")
        return container_id

    def host_config(self) -> dict[str, Any]:
        host: dict[str, Any] = {}
        if self.options.network_mode:
            host["NetworkMode"] = self.options.network_mode
        return host

    async def remove_container(self, container_id: str, announce: bool = True) -> None:
        with contextlib.suppress(ContainerError):  # (a scratch step's ID names no container)
            await self.containers.remove(container_id, force=True)
        if announce:
            self.out(f"Removing intermediate container {container_id[:12]}\n")

    async def commit(
        self, state: _State, step_config: dict[str, Any], layer: Any | None, container_id: str = ""
    ) -> None:
        """A new image: the state's config, this step's container_config and history, and `layer`
        ((tar path, diff ID, size), or None for an empty layer) on top of the current image."""
        parent = state.image_config
        created = _now()
        created_by = " ".join(step_config.get("Cmd") or [])
        history = list(parent.get("history") or [])
        entry: dict[str, Any] = {"created": created}
        if state.maintainer:
            entry["author"] = state.maintainer
        entry["created_by"] = created_by
        if layer is None:
            entry["empty_layer"] = True
        history.append(entry)
        diff_ids = list((parent.get("rootfs") or {}).get("diff_ids") or [])
        record = self.images.get(state.image_id) if state.image_id else None
        layers = list(record.layers) if record else []
        if layer is not None:
            tar_path, diff_id, size = layer
            try:
                layer_record = await asyncio.to_thread(
                    self.images.add_layer, tar_path, diff_id, size, record.chain_id if record else ""
                )
            finally:
                tar_path.unlink(missing_ok=True)  # (moved into the content store when new)
            layers.append(layer_record)
            diff_ids.append(diff_id)
        config: dict[str, Any] = {
            "architecture": parent.get("architecture") or go_arch(),
            "config": container_config(state.run_config),
            "container_config": container_config(step_config),
            "created": created,
            "docker_version": f"dockyard-{__version__}",
            "history": history,
            "os": parent.get("os") or "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids} if diff_ids else {"type": "layers"},
        }
        if container_id:
            config["container"] = container_id
        if state.maintainer:
            config["author"] = state.maintainer
        if parent.get("variant"):
            config["variant"] = parent["variant"]
        blob = go_json(dict(sorted(config.items())))
        async with self.images.lock:
            new = self.images.register(blob, layers, extra={"parent": state.image_id, "built": True})
        state.image_id = new.id
        state.image_config = config

    # --- RUN -------------------------------------------------------------------------------------

    async def run(self, state: _State, inst: Instruction) -> None:
        if inst.flags:
            name = inst.flags[0][2:].partition("=")[0]
            raise BuildError(
                f"the --{name} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to "
                "learn how to build images with BuildKit enabled",
                400,
            )
        if not state.image_id:
            raise BuildError("Please provide a source image with `from` prior to run", 400)
        rc = state.run_config
        cmd = self.cmd_line(state, inst)
        build_args = state.args.filter_allowed(list(rc.get("Env") or []))
        save_cmd = cmd
        if build_args:
            kept = sorted(a for a in build_args if state.args.referenced_or_not_builtin(a.partition("=")[0]))
            save_cmd = [f"|{len(kept)}", *kept, *cmd]
        probe_config = dict(rc, Cmd=save_cmd)
        if save_cmd:
            probe_config["Entrypoint"] = None
        if self.probe(state, probe_config):
            return
        run_config = dict(rc, Cmd=cmd, Env=[*(rc.get("Env") or []), *build_args])
        run_config["Entrypoint"] = [""]
        run_config["Healthcheck"] = {"Test": ["NONE"]}
        run_config["AttachStdout"] = run_config["AttachStderr"] = True
        container_id = await self.create_container(state, run_config)
        try:
            code = await self.run_container(container_id)
            if code != 0:
                raise BuildError(f"The command '{' '.join(cmd)}' returned a non-zero code: {code}", 500, code)
            layer = await self.diff(container_id, state)
            await self.commit(state, probe_config, layer, container_id)
        except BaseException:
            # unlike dockerd (which keeps a failed step's container), nothing is left behind
            await self.remove_container(container_id, announce=False)
            raise
        await self.remove_container(container_id)

    async def run_container(self, container_id: str) -> int:
        try:
            await self.containers.start(container_id)
        except ContainerError as e:
            raise BuildError(str(e), getattr(e, "status", 500)) from None
        async for batch in self.containers.logs(container_id, follow=True):
            for stream, _, data in batch:
                text = data.decode("utf-8", errors="replace")
                if stream == "stderr":
                    text = f"{_STDERR_START}{text}{_STDERR_END}"
                self.out(text)
        return await self.containers.wait(container_id)

    async def diff(self, container_id: str, state: _State) -> tuple[Path, str, int] | None:
        """The container's changes as a layer tar in the ingest dir, or None when nothing changed."""
        return await asyncio.to_thread(self._diff_blocking, container_id, state.image_id)

    def _diff_blocking(self, rootfs_id: str, image_id: str) -> tuple[Path, str, int] | None:
        rootfs = self.containers.rootfs
        rootfs.unmount(rootfs_id)
        if rootfs.driver != "overlay2":
            raise BuildError(f"building needs the overlay2 storage driver (this daemon uses {rootfs.driver})")
        record = self.images.get(image_id) if image_id else None
        lowers = self.images.snapshots.lower_dirs(record.chain_id) if record and record.chain_id else []
        fd, name = tempfile.mkstemp(prefix="build-layer-", dir=self.images.content.ingest_dir)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                diff = write_layer(rootfs.dir(rootfs_id) / "upper", out, lowers)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if diff.entries == 0:
            path.unlink(missing_ok=True)
            return None
        return path, diff.diff_id, diff.size

    # --- WORKDIR, COPY, ADD ----------------------------------------------------------------------

    async def workdir(self, state: _State, path: str) -> None:
        rc = state.run_config
        if not path:
            raise BuildError("cannot normalize nothing", 400)
        # dockerd's normalizeWorkdir: a relative path is joined (and so cleaned), an absolute one kept
        # as written ("/app/" stays "/app/")
        new = path if path.startswith("/") else _join_clean("/", rc.get("WorkingDir") or "", path)
        rc["WorkingDir"] = new
        step = self.comment_config(state, f"WORKDIR {new}", single=True)
        if self.probe(state, step):
            return
        self.merge_image_config(state, step)
        scratch = not state.image_id
        container_id = await self.create_container(state, step)
        try:
            # (on scratch too: dockerd creates the directory in an empty rootfs)
            layer = await asyncio.to_thread(self._mkdir_in, container_id, state, new)
            await self.commit(state, step, layer, container_id)
        finally:
            if scratch:  # no container was made: only the rootfs _mkdir_in prepared
                await asyncio.to_thread(self._drop_rootfs, container_id)
            await self.remove_container(container_id)

    def _mkdir_in(self, container_id: str, state: _State, directory: str) -> tuple[Path, str, int] | None:
        record = self.images.get(state.image_id) if state.image_id else None
        merged = self.containers.rootfs.mount(container_id, record.chain_id if record else "")
        try:
            with RootDir(str(merged)) as root:
                make_workdir(root, directory)
        except OSError as e:
            raise BuildError(f"failed to make the working directory {directory}: {e.strerror or e}") from None
        finally:
            self.containers.rootfs.unmount(container_id)
        return self._diff_blocking(container_id, state.image_id)

    async def copy(self, state: _State, inst: Instruction, env: list[str]) -> None:
        name = inst.keyword.upper()
        allowed = ("chown", "from", "chmod") if inst.keyword == "copy" else ("chown", "chmod")
        try:
            flags = inst.parse_flags(allowed)
        except DockerfileError as e:
            raise BuildError(str(e), 400) from None
        if flags.get("chmod"):
            raise BuildError(
                "the --chmod option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to "
                "learn how to build images with BuildKit enabled",
                400,
            )
        chown = self.expand(flags.get("chown", ""), env)
        words = [self.expand(w, env) for w in inst.args]
        sources, dest = words[:-1], words[-1]
        if any("://" in s for s in sources):
            if inst.keyword == "copy":
                raise BuildError(f"{name} failed: source can't be a URL for COPY")
            raise BuildError(f"{name} failed: downloading remote sources is not supported by this daemon")
        source_root = self.context.root
        source_mount = ""
        from_image = ""
        if flags.get("from"):
            from_image = await self.copy_from_image(flags["from"])
        try:
            if from_image:
                source_mount = "build-" + secrets.token_hex(16)
                record = self.images.get(from_image)
                source_root = str(
                    await asyncio.to_thread(self.containers.rootfs.mount, source_mount, record.chain_id)
                )
            try:
                files = await asyncio.to_thread(resolve_sources, source_root, sources, not from_image)
            except ContextError as e:
                raise BuildError(f"{name} failed: {e}") from None
            if len(files) > 1 and not dest.endswith("/"):
                raise BuildError(
                    f"When using {name} with more than one source file, the destination must be a directory "
                    "and end with a /"
                )
            chown_comment = f"--chown={chown}" if chown else ""
            comment = f"{name} {chown_comment}{source_hash(files)} in {dest} "
            step = self.comment_config(state, comment, single=True)
            if self.probe(state, step):
                return
            workdir = state.run_config.get("WorkingDir") or ""
            if not dest.startswith("/"):
                full = os.path.join("/", workdir, dest)
                dest = full + ("/" if dest.endswith("/") and not full.endswith("/") else "")
            rootfs_id = "build-" + secrets.token_hex(16)
            try:
                layer = await asyncio.to_thread(
                    self._copy_blocking,
                    rootfs_id,
                    state,
                    files,
                    dest,
                    chown,
                    inst.keyword == "add",
                    bool(from_image) and not chown,
                )
            finally:
                await asyncio.to_thread(self._drop_rootfs, rootfs_id)
            await self.commit(state, step, layer)
        finally:
            if source_mount:
                await asyncio.to_thread(self._drop_rootfs, source_mount)

    async def copy_from_image(self, name: str) -> str:
        for result in self.stages:
            if result.name and result.name == name.lower():
                return result.image_id
        if name.isdigit():
            index = int(name)
            if index == len(self.stages):
                raise BuildError(f"invalid from flag value {name}: refers to current build stage")
            if index > len(self.stages):
                raise BuildError(f"invalid from flag value {name}: index out of bounds")
            return self.stages[index].image_id
        image_id, _ = await self.from_image(name, self.platform)
        return image_id

    def _drop_rootfs(self, rootfs_id: str) -> None:
        try:
            self.containers.rootfs.remove(rootfs_id)
        except Exception as e:  # a scratch rootfs left behind is removed at the next daemon start
            log.warning("build: could not remove scratch rootfs %s: %s", rootfs_id, e)

    def _copy_blocking(
        self,
        rootfs_id: str,
        state: _State,
        files: list[SourceFile],
        dest: str,
        chown: str,
        decompress: bool,
        preserve_owner: bool,
    ) -> tuple[Path, str, int] | None:
        name = "ADD" if decompress else "COPY"
        record = self.images.get(state.image_id) if state.image_id else None
        merged = str(self.containers.rootfs.mount(rootfs_id, record.chain_id if record else ""))
        try:
            with RootDir(merged) as root:
                identity: tuple[int, int] | None = None if preserve_owner else (0, 0)
                if chown:
                    identity = parse_chown(chown, root)
                for source in files:
                    copy_source(source, root, dest, identity, decompress)
        except CopyError as e:
            raise BuildError(str(e)) from None
        except OSError as e:  # a loop in the image's links, a file where a directory must be...
            where = f" {e.filename}" if e.filename else ""
            raise BuildError(f"{name} failed: {e.strerror or e}{where}") from None
        finally:
            self.containers.rootfs.unmount(rootfs_id)
        return self._diff_blocking(rootfs_id, state.image_id)


# --------------------------------------------------------------------------------------------- helpers


def _join_clean(*parts: str) -> str:
    """Go's filepath.Join: joined and cleaned ("//x" is "/x")."""
    joined = os.path.normpath(os.path.join(*parts))
    return "/" + joined.lstrip("/") if joined.startswith("/") else joined


def _port_specs(port: str) -> list[str]:
    """EXPOSE's nat.ParsePortSpecs for what EXPOSE accepts: 80, 80/udp, 8000-8002/tcp."""
    match = re.fullmatch(r"(?:(?:[\d.]*|\[[0-9a-fA-F:]*\]):)?(?:\d*:)?(\d+)(?:-(\d+))?(?:/(\w+))?", port)
    if not match:
        raise BuildError(f"Invalid containerPort: {port.split('/')[0]}", 400)
    start, end, proto = int(match[1]), int(match[2] or match[1]), (match[3] or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise BuildError(f"Invalid proto: {proto}", 400)
    if end < start:
        raise BuildError(f"Invalid containerPort: {port.split('/')[0]}", 400)
    return [f"{p}/{proto}" for p in range(start, end + 1)]
