"""The Dockerfile parser, the shell-word expansion, .dockerignore matching and the cache's compare."""

from __future__ import annotations

import pytest

from dockyard.build.cache import configs_match, find_cached
from dockyard.build.dockerfile import DockerfileError, parse
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
        ("FROM busybox\nENV A\n", "ENV must have two arguments"),
        ("# escape=x\nFROM busybox\n", "invalid escape token"),
        ("\n# just a comment\n", "file with no instructions"),
        ("FROM busybox\nONBUILD ONBUILD RUN x\n", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=".*".join(map(__import__("re").escape, message.split("*")))):
        parse(text)


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
