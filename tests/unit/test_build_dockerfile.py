"""The Dockerfile parser, the shell-word expansion, .dockerignore matching and the cache's compare."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.build.cache import configs_match, find_cached
from dockyard.build.dockerfile import DockerfileError, health_config, parse, parse_go_duration
from dockyard.build.dockerignore import PatternMatcher, read_patterns
from dockyard.build.layer import write_layer
from dockyard.build.shell_words import Lex, ShellWordError

# --- parser ---------------------------------------------------------------------------------------


def test_stages_meta_args_and_original_text() -> None:
    df = parse(
        "ARG BASE=busybox\n"
        "# a comment\n"
        "FROM ${BASE} AS Build\n"
        "RUN echo a \\\n"
        "  # a comment inside\n"
        "  && echo b\n"
        "COPY --from=x --chown=1:2 a b /dst/\n"
        'CMD ["sh", "-c", "x"]\n'
        "FROM scratch\n"
        'ENV A=1 B="two words"\n'
        "ENV OLD form value\n"
    )
    assert [a.original for a in df.meta_args] == ["ARG BASE=busybox"]
    first, second = df.stages
    assert (first.base_name, first.name, first.source_code) == ("${BASE}", "build", "FROM ${BASE} AS Build")
    run, copy, cmd = first.commands
    assert (
        run.original == "RUN echo a   && echo b" and run.args == ["echo a   && echo b"] and not run.json_form
    )
    assert copy.flags == ["--from=x", "--chown=1:2"] and copy.args == ["a", "b", "/dst/"]
    assert copy.parse_flags(("from", "chown", "chmod")) == {"from": "x", "chown": "1:2"}
    assert cmd.json_form and cmd.args == ["sh", "-c", "x"]
    env, old = second.commands
    assert env.args == ["A", "1", "B", '"two words"']  # quotes go at expansion
    assert old.args == ["OLD", "form value"]


def test_escape_directive_changes_the_continuation_character() -> None:
    df = parse("# escape=`\nFROM busybox\nRUN echo a `\n  b\nCOPY c:\\x /y\n")
    assert df.escape == "`"
    run, copy = df.stages[0].commands
    assert run.args == ["echo a   b"]
    assert copy.args == ["c:\\x", "/y"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM busybox\nFOO bar\n", "dockerfile parse error line 2: unknown instruction: FOO"),
        ("RUN true\n", "no build stage in current context"),
        ("FROM busybox\nCOPY a\n", "COPY requires at least two arguments"),
        ("FROM busybox\nSHELL sh -c\n", "SHELL requires the arguments to be in JSON form"),
        ("FROM busybox\nCOPY --nope=1 a b\n", "dockerfile parse error line 2: Unknown flag: nope"),
        ("FROM busybox as 1x\n", "invalid name for build stage"),
        ("FROM a b\n", "FROM requires either one or three arguments"),
        # the line-level parser's errors (dockerd's parser.Parse) carry no line
        ("FROM busybox\nENV A\n", "failed to parse Dockerfile: ENV must have two arguments"),
        ('FROM busybox\nCMD ["a", 1]\n', "failed to parse Dockerfile: when using JSON array syntax"),
        ("FROM busybox\nONBUILD LABEL a\n", "failed to parse Dockerfile: LABEL must have two arguments"),
        ("# escape=x\nFROM busybox\n", "failed to parse Dockerfile: invalid escape token 'x'"),
        ("# escape=`\n# escape=`\nFROM b\n", "failed to parse Dockerfile: only one escape parser directive"),
        ("\n# just a comment\n", "failed to parse Dockerfile: file with no instructions"),
        # ... and come first: the whole file is read before any instruction is checked
        ("FROM busybox\nFOO x\nENV A\n", "failed to parse Dockerfile: ENV must have two arguments"),
        # HEALTHCHECK is checked when parsed, before anything runs
        ("FROM b\nHEALTHCHECK --interval=1x CMD a\n", 'line 2: time: unknown unit "x" in duration "1x"'),
        ("FROM b\nHEALTHCHECK --timeout=5 CMD a\n", 'line 2: time: missing unit in duration "5"'),
        ("FROM b\nHEALTHCHECK --interval=0 CMD a\n", 'line 2: Interval "interval" cannot be less than 1ms'),
        ("FROM b\nHEALTHCHECK --interval=-1s CMD a\n", 'Interval "interval" cannot be less than 1ms'),
        ("FROM b\nHEALTHCHECK --retries=x CMD a\n", 'strconv.ParseInt: parsing "x": invalid syntax'),
        ("FROM b\nHEALTHCHECK --retries=0 CMD a\n", "--retries must be at least 1 (not 0)"),
        ("FROM b\nHEALTHCHECK FOO a\n", 'line 2: Unknown type "FOO" in HEALTHCHECK (try CMD)'),
        ("FROM b\nHEALTHCHECK CMD\n", "line 2: Missing command after HEALTHCHECK CMD"),
        ("FROM b\nHEALTHCHECK NONE x\n", "line 2: HEALTHCHECK NONE takes no arguments"),
        ("FROM busybox\nONBUILD ONBUILD RUN x\n", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=".*".join(map(__import__("re").escape, message.split("*")))):
        parse(text)


def test_shell_message_is_dockerds_without_the_instruction() -> None:
    with pytest.raises(DockerfileError) as error:
        parse("FROM busybox\nSHELL sh -c\n")
    assert (
        str(error.value) == "dockerfile parse error line 2: SHELL requires the arguments to be in JSON form"
    )


def test_expose_words_are_sorted_as_written() -> None:
    """dockerd sorts EXPOSE's words before expanding them: `EXPOSE ${PORT:-80} ${P2:-81/udp}` is
    committed as "EXPOSE 81/udp 80" ("${P2" sorts first)."""
    (inst,) = parse("FROM b\nEXPOSE ${PORT:-80} ${P2:-81/udp} 7 10\n").stages[0].commands
    assert inst.args == ["${P2:-81/udp}", "${PORT:-80}", "10", "7"]


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("1s", 10**9),
        ("1m30.5s", 90_500_000_000),
        ("1h2m", 3_720_000_000_000),
        ("1.5ms", 1_500_000),
        ("10us", 10_000),
        ("10\u00b5s", 10_000),
        (".5s", 500_000_000),
        ("-2s", -2 * 10**9),
    ],
)
def test_go_durations(text: str, ns: int) -> None:
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("s", 'time: invalid duration "s"'),
        (".s", 'time: invalid duration ".s"'),
        ("5", 'time: missing unit in duration "5"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        ("1s5", 'time: missing unit in duration "1s5"'),
    ],
)
def test_go_duration_errors(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as error:
        parse_go_duration(text)
    assert str(error.value) == message


def test_health_config_and_none_ignores_flags() -> None:
    check, none = (
        parse("FROM b\nHEALTHCHECK --interval=1m30s --retries=3 CMD ls\nHEALTHCHECK --whatever=1 NONE\n")
        .stages[0]
        .commands
    )
    assert health_config(check) == {"Test": ["CMD-SHELL", "ls"], "Interval": 90 * 10**9, "Retries": 3}
    assert health_config(none) == {"Test": ["NONE"]}  # dockerd does not read NONE's flags


def test_onbuild_keeps_its_inner_instruction() -> None:
    (inst,) = parse("FROM busybox\nONBUILD RUN echo hi\n").stages[0].commands
    assert inst.sub is not None and inst.sub.keyword == "run" and inst.args == ["run", "echo hi"]


def test_healthcheck_forms() -> None:
    shell, exec_form, none = (
        parse(
            'FROM b\nHEALTHCHECK --interval=5s CMD wget -q x\nHEALTHCHECK CMD ["a", "b"]\nHEALTHCHECK NONE\n'
        )
        .stages[0]
        .commands
    )
    assert shell.args == ["CMD", "wget -q x"] and shell.flags == ["--interval=5s"] and not shell.json_form
    assert exec_form.args == ["CMD", "a", "b"] and exec_form.json_form
    assert none.args == ["NONE"]


# --- variable expansion ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("$A", "a"),
        ("${A}x", "ax"),
        ("${UNSET:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${UNSET-dflt}", "dflt"),
        ("${A:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("'$A'", "$A"),
        ('"$A b"', "a b"),
        ("\\$A", "$A"),
        ('"\\$A"', "$A"),
        ("a$", "a$"),
        ("${A:-${B:-nested}}", "a"),
        ("${UNSET:-${A}}", "a"),
    ],
)
def test_expansion(word: str, expected: str) -> None:
    assert Lex().process_word(word, {"A": "a", "EMPTY": ""}) == expected


def test_words_split_on_unquoted_spaces_including_expanded_ones() -> None:
    assert Lex().process_words('$PORTS "8 9" x', {"PORTS": "80 443"}) == ["80", "443", "8 9", "x"]


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("${", "missing '}'"),
        ("${A", "missing ':' in substitution"),
        ("${}", "bad substitution"),
        ("${UNSET:?must be set}", "UNSET: must be set"),
        ("${UNSET?}", "UNSET: is not allowed to be unset"),
        ("'open", "matching single-quote"),
    ],
)
def test_expansion_errors(word: str, message: str) -> None:
    with pytest.raises(ShellWordError, match=message):
        Lex().process_word(word, {})


def test_backtick_escape() -> None:
    assert Lex("`").process_word("`$A \\b", {"A": "a"}) == "$A \\b"


# --- .dockerignore --------------------------------------------------------------------------------


def test_dockerignore_rules() -> None:
    patterns = read_patterns("# comment\n*.log\n/build\n**/tmp\n!keep.log\n docs/*.md \n")
    assert patterns == ["*.log", "build", "**/tmp", "!keep.log", "docs/*.md"]
    m = PatternMatcher(patterns)
    assert m.matches("a.log") and not m.matches("keep.log") and not m.matches("sub/a.log")
    assert m.matches("build") and m.matches("build/x/y")  # everything below a matched directory
    assert m.matches("tmp") and m.matches("a/b/tmp") and m.matches("a/tmp/file")
    assert m.matches("docs/x.md") and not m.matches("docs/sub/x.md")
    assert m.exclusions
    assert not PatternMatcher(["*"]).matches(".")


# --- the cache's compare --------------------------------------------------------------------------


def test_cache_matches_dockers_compare() -> None:
    step = {"Cmd": ["/bin/sh", "-c", "echo"], "Env": ["A=1"], "Labels": {"a": "b"}, "WorkingDir": "/x"}
    assert configs_match(step, dict(step, WorkingDir="/other"))  # not compared, as Docker
    assert not configs_match(step, dict(step, Env=["A=2"]))
    assert not configs_match(step, dict(step, Cmd=["/bin/sh", "-c", "other"]))
    assert not configs_match(step, dict(step, Labels={"a": "c"}))
    assert not configs_match(step, dict(step, OpenStdin=True))
    candidates = [
        ("sha256:old", "sha256:p", "2024-01-01T00:00:00Z", step),
        ("sha256:new", "sha256:p", "2025-01-01T00:00:00Z", step),
        ("sha256:other-parent", "sha256:q", "2026-01-01T00:00:00Z", step),
    ]
    assert find_cached("sha256:p", step, candidates) == "sha256:new"
    assert find_cached("sha256:p", dict(step, User="x"), candidates) == ""


# --- the layer diff -------------------------------------------------------------------------------


def test_upper_dir_to_layer_tar(tmp_path) -> None:
    import io
    import os
    import tarfile

    upper, lower = tmp_path / "upper", tmp_path / "lower"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc").chmod(0o755)
    (upper / "etc").mkdir(parents=True)
    (upper / "etc").chmod(0o755)
    (upper / "etc" / "hosts").write_bytes(b"")  # the runtime's mount point: left out
    (upper / "proc").mkdir()
    (upper / "app").mkdir()
    (upper / "app" / "f").write_bytes(b"data")
    os.link(upper / "app" / "f", upper / "app" / "g")
    if os.geteuid() == 0:
        os.mknod(upper / "gone", 0o600 | 0o020000, 0)  # an overlay whiteout
    out = io.BytesIO()
    diff = write_layer(upper, out, [lower])
    out.seek(0)
    names = {m.name: m for m in tarfile.open(fileobj=out)}
    assert "etc" not in names and "etc/hosts" not in names and "proc" not in names
    assert names["app/f"].size == 4 and names["app/g"].islnk() and names["app/g"].linkname == "app/f"
    if os.geteuid() == 0:
        assert ".wh.gone" in names
    assert diff.diff_id.startswith("sha256:") and diff.entries >= 3
    empty = tmp_path / "empty"
    empty.mkdir()
    assert write_layer(empty, io.BytesIO(), []).entries == 0


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="whiteouts and trusted.* xattrs need root")
def test_whiteout_and_opaque_entries_as_dockerd_writes_them(tmp_path) -> None:
    import io
    import os
    import tarfile

    upper = tmp_path / "upper"
    (upper / "d").mkdir(parents=True)
    os.chmod(upper / "d", 0o750)
    os.chown(upper / "d", 5, 6)
    os.setxattr(upper / "d", "trusted.overlay.opaque", b"y")
    os.mknod(upper / "d" / "gone", 0o600 | 0o020000, 0)
    out = io.BytesIO()
    write_layer(upper, out, [])
    out.seek(0)
    names = {m.name: m for m in tarfile.open(fileobj=out)}
    whiteout, opaque = names["d/.wh.gone"], names["d/.wh..wh..opq"]
    assert whiteout.isreg() and whiteout.mode == 0o600 and (whiteout.uid, whiteout.gid) == (0, 0)
    # the opaque marker takes its directory's permissions and owner
    assert opaque.isreg() and opaque.mode == 0o750 and (opaque.uid, opaque.gid) == (5, 6)


# --- the context ----------------------------------------------------------------------------------


def _context_tar(files: dict[str, bytes], finish: bool) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    archive = tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT)
    for name, data in files.items():
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    if finish:
        archive.close()
        return buf.getvalue()
    # what the docker CLI sends for a Dockerfile outside the context: the last file's data, then nothing
    # (no padding to 512 bytes, no end-of-archive blocks)
    last = list(files.values())[-1]
    return buf.getvalue()[: buf.tell() - (-len(last) % 512)]


@pytest.mark.parametrize("compression", ["", "gzip", "bz2", "xz"])
def test_context_without_end_of_archive_blocks(tmp_path, compression: str) -> None:
    import bz2
    import gzip
    import io
    import lzma

    from dockyard.build.context import BuildContext

    body = _context_tar({"Dockerfile": b"FROM busybox\n", ".dockerignore": b"x\n.dockerignore"}, False)
    assert len(body) % 512 != 0
    compress = {"": bytes, "gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[compression]
    context = BuildContext(tmp_path)
    try:
        context.extract(io.BytesIO(compress(body)))
        assert (Path(context.root) / "Dockerfile").read_bytes() == b"FROM busybox\n"
        assert (Path(context.root) / ".dockerignore").read_bytes() == b"x\n.dockerignore"
    finally:
        context.close()
    assert not tmp_path.joinpath(context.scratch.name).exists()


def test_context_that_is_not_a_tar_is_refused(tmp_path) -> None:
    import io

    from dockyard.build.context import BuildContext, ContextError

    context = BuildContext(tmp_path)
    try:
        with pytest.raises(ContextError, match="failed to read the build context"):
            context.extract(io.BytesIO(b"\x1f\x8bnot really gzip" * 40))
        with pytest.raises(ContextError, match="failed to read the build context"):
            context.extract(io.BytesIO(b"FROM busybox\n" * 100))
    finally:
        context.close()
