"""Image reference parsing. Expected values were checked against the docker 28.2 CLI (`docker pull REF`
against a stub daemon, which prints the normalized reference or Docker's error) and distribution/reference."""

import pytest

from dockyard.reference import (
    InvalidReference,
    Reference,
    is_image_id_prefix,
    parse_reference,
    validate_digest,
    validate_tag,
)

F64 = "f" * 64
D = f"sha256:{F64}"
FORMAT = "invalid reference format"
TOO_LONG = "repository name must not be more than 255 characters"


def lowercase(name: str) -> str:
    return f"invalid reference format: repository name ({name}) must be lowercase"


# (input, normalized string or Docker's error message)
CASES = [
    # familiar names and Docker Hub normalization
    ("httpd", "docker.io/library/httpd:latest"),
    ("httpd:2.4", "docker.io/library/httpd:2.4"),
    ("ubuntu:latest", "docker.io/library/ubuntu:latest"),
    ("user/app:1.2", "docker.io/user/app:1.2"),
    ("library/x", "docker.io/library/x:latest"),
    ("docker.io/x", "docker.io/library/x:latest"),
    ("docker.io/library/x", "docker.io/library/x:latest"),
    ("docker.io/library/a/b", "docker.io/library/a/b:latest"),
    ("index.docker.io/x", "docker.io/library/x:latest"),
    ("index.docker.io/library/x", "docker.io/library/x:latest"),
    ("index.docker.io/user/x", "docker.io/user/x:latest"),
    ("a/b/c/d/e", "docker.io/a/b/c/d/e:latest"),
    # what counts as a domain: '.', ':', "localhost", or an uppercase first element
    ("localhost/x", "localhost/x:latest"),
    ("localhost:5000/x", "localhost:5000/x:latest"),
    ("localhost", "docker.io/library/localhost:latest"),
    ("localhost:5000", "docker.io/library/localhost:5000"),
    ("example.com", "docker.io/library/example.com:latest"),
    ("example.com/x", "example.com/x:latest"),
    ("test.com:tag", "docker.io/library/test.com:tag"),
    ("test.com:5000", "docker.io/library/test.com:5000"),
    ("foo.com:5000", "docker.io/library/foo.com:5000"),
    ("test_com", "docker.io/library/test_com:latest"),
    ("foo_bar.com:8080", "docker.io/library/foo_bar.com:8080"),
    ("foo/foo_bar.com:8080", "docker.io/foo/foo_bar.com:8080"),
    ("Foo/bar", "Foo/bar:latest"),
    ("LOCALDOMAIN/x", "LOCALDOMAIN/x:latest"),
    ("UPPER.com/x", "UPPER.com/x:latest"),
    ("192.168.1.1", "docker.io/library/192.168.1.1:latest"),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo:5050"),
    ("[2001:db8::1]/repo", "[2001:db8::1]/repo:latest"),
    ("[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000/repo:tag"),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com/myimage:xn--n3h.com"),
    (
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "b.gcr.io/test.example.com/my-app:test.example.com",
    ),
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com/bar/baz/quux:some-long-tag"),
    # digests, and tag with digest
    (f"host:5000/a/b@{D}", f"host:5000/a/b@{D}"),
    (f"host:5000/a/b:tag@{D}", f"host:5000/a/b:tag@{D}"),
    (f"httpd:tag@{D}", f"docker.io/library/httpd:tag@{D}"),
    (f"127.0.0.1:5000/x@sha256:{'0' * 64}", f"127.0.0.1:5000/x@sha256:{'0' * 64}"),
    (f"httpd@sha384:{'f' * 96}", f"docker.io/library/httpd@sha384:{'f' * 96}"),
    (f"httpd@sha512:{'f' * 128}", f"docker.io/library/httpd@sha512:{'f' * 128}"),
    (f"httpd@sha256:{'F' * 64}", "invalid checksum digest format"),
    (f"httpd:tag@SHA256:{F64}", "invalid checksum digest format"),
    (f"httpd@sha256:{'f' * 32}", "invalid checksum digest length"),
    (f"httpd@sha384:{'f' * 94}", "invalid checksum digest length"),
    (f"httpd@sha256:{'f' * 31}", FORMAT),
    (f"httpd@md5:{'f' * 32}", "unsupported digest algorithm"),
    (f"httpd@sha256+b64:{'f' * 32}", "unsupported digest algorithm"),
    (f"a@b-c:{'f' * 32}", "unsupported digest algorithm"),
    (f"a@b.c:{'f' * 32}", "unsupported digest algorithm"),
    (f"x@sha256_:{F64}", FORMAT),
    (f"x@{D}:tag", FORMAT),
    ("ubuntu@sha256:abc:def", FORMAT),
    ("x:latest@", FORMAT),
    (f"@{D}", FORMAT),
    # tags
    ("httpd:Tag_1.0-x", "docker.io/library/httpd:Tag_1.0-x"),
    ("httpd:_tag", "docker.io/library/httpd:_tag"),
    ("httpd:" + "t" * 128, "docker.io/library/httpd:" + "t" * 128),
    ("httpd:" + "t" * 129, FORMAT),
    ("httpd:-tag", FORMAT),
    ("httpd:.tag", FORMAT),
    ("httpd:tag:other", FORMAT),
    ("httpd:", FORMAT),
    (":tag", FORMAT),
    ("httpd:é", FORMAT),
    ("httpd:１", FORMAT),  # Go's \w is ASCII only
    ("foo:tag with space", FORMAT),
    # path components and separators
    ("a_b", "docker.io/library/a_b:latest"),
    ("a.b", "docker.io/library/a.b:latest"),
    ("a-b", "docker.io/library/a-b:latest"),
    ("a---b", "docker.io/library/a---b:latest"),
    ("dock__er/x", "docker.io/dock__er/x:latest"),
    ("dock--er/x", "docker.io/dock--er/x:latest"),
    ("dock___er/x", FORMAT),
    ("dock..er/x", FORMAT),
    ("dock.-er/x", FORMAT),
    ("____/____", FORMAT),
    ("-docker", FORMAT),
    ("docker-/x", FORMAT),
    ("/httpd", FORMAT),
    ("httpd/", FORMAT),
    ("a//b", FORMAT),
    ("foo bar", FORMAT),
    ("", FORMAT),
    ("httpd\n", FORMAT),  # no trailing-newline leniency
    ("httpd:latest\n", FORMAT),
    ("https://github.com/docker/docker", FORMAT),
    # domains that are not valid hosts
    ("host-/x", FORMAT),
    ("host.com:/x", FORMAT),
    ("host.com:abc/x", FORMAT),
    ("foo.com:5000/", FORMAT),
    ("[2001:db8::1]", FORMAT),
    ("[2001:db8::1]:5000", FORMAT),
    ("[fe80::1%eth0]:5000/repo", FORMAT),
    ("fc00::1:5000/debian", FORMAT),
    # uppercase: Docker names the offending remainder
    ("Httpd", lowercase("library/Httpd")),
    ("library/Httpd", lowercase("library/Httpd")),
    ("docker.io/Httpd", lowercase("library/Httpd")),
    ("user/App", lowercase("user/App")),
    ("host:5000/Foo", lowercase("Foo")),
    ("localhost:5000/Foo", lowercase("Foo")),
    ("host:5000/foo/Bar:tag", lowercase("foo/Bar")),
    ("A/b/C", lowercase("b/C")),
    ("-H", lowercase("library/-H")),
    (f"httpd@SHA256:{F64}", lowercase("library/httpd@SHA256")),
    (f"httpd@Md5:{'f' * 32}", lowercase("library/httpd@Md5")),
    ("A" * 64, lowercase("library/" + "A" * 64)),
    # 64-hex strings are image IDs, not names
    ("a" * 64, f"invalid repository name ({'a' * 64}), cannot specify 64-byte hexadecimal strings"),
    ("f" * 63, f"docker.io/library/{'f' * 63}:latest"),
    ("f" * 65, f"docker.io/library/{'f' * 65}:latest"),
    ("docker.io/" + "a" * 64, f"docker.io/library/{'a' * 64}:latest"),
    ("library/" + F64, f"docker.io/library/{F64}:latest"),
    (D, f"docker.io/library/sha256:{F64}"),
    # the 255 limit counts the path ("library/..." included) but not the domain
    ("a" * 247, f"docker.io/library/{'a' * 247}:latest"),
    ("a" * 248, TOO_LONG),
    ("a/" + "a" * 254, TOO_LONG),
    ("domain/" + "a" * 256 + ":tag", TOO_LONG),
    ("example.com/" + "a" * 255 + ":tag", "example.com/" + "a" * 255 + ":tag"),
    ("a/" * 127 + "a:tag-puts-this-over-max", "docker.io/" + "a/" * 127 + "a:tag-puts-this-over-max"),
]


def _outcome(text: str) -> str:
    try:
        return str(parse_reference(text))
    except InvalidReference as e:
        return str(e)


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:60] for c in CASES])
def test_parse_matches_docker(text: str, expected: str) -> None:
    assert _outcome(text) == expected


def test_invalid_reference_is_value_error() -> None:
    with pytest.raises(ValueError, match="^invalid reference format$"):
        parse_reference("a//b")


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        ("httpd", "docker.io", "library/httpd", "latest", None),
        ("user/app:1.2", "docker.io", "user/app", "1.2", None),
        (f"host:5000/a/b@{D}", "host:5000", "a/b", None, D),
        (f"httpd:1@{D}", "docker.io", "library/httpd", "1", D),
        ("localhost/x", "localhost", "x", "latest", None),
        ("Foo/bar", "Foo", "bar", "latest", None),
        ("[::1]:5000/repo", "[::1]:5000", "repo", "latest", None),
    ],
)
def test_fields(text: str, domain: str, path: str, tag: str | None, digest: str | None) -> None:
    assert parse_reference(text) == Reference(domain, path, tag, digest)


@pytest.mark.parametrize(
    ("text", "repository", "familiar_name", "familiar", "hub"),
    [
        ("httpd", "docker.io/library/httpd", "httpd", "httpd:latest", True),
        ("docker.io/library/httpd:2", "docker.io/library/httpd", "httpd", "httpd:2", True),
        ("user/app:1.2", "docker.io/user/app", "user/app", "user/app:1.2", True),
        ("library/a/b", "docker.io/library/a/b", "library/a/b", "library/a/b:latest", True),
        ("host:5000/a/b", "host:5000/a/b", "host:5000/a/b", "host:5000/a/b:latest", False),
        ("localhost/x:dev", "localhost/x", "localhost/x", "localhost/x:dev", False),
        (f"httpd@{D}", "docker.io/library/httpd", "httpd", f"httpd@{D}", True),
        (f"q.io/x:1@{D}", "q.io/x", "q.io/x", f"q.io/x:1@{D}", False),
    ],
)
def test_names(text: str, repository: str, familiar_name: str, familiar: str, hub: bool) -> None:
    ref = parse_reference(text)
    assert ref.repository == repository
    assert ref.familiar_name == familiar_name
    assert ref.familiar() == familiar
    assert ref.is_docker_hub is hub
    assert parse_reference(str(ref)) == ref  # the full string round-trips
    assert parse_reference(ref.familiar()) == ref  # and so does the familiar one


def test_default_tag() -> None:
    assert parse_reference("httpd", default_tag=None) == Reference("docker.io", "library/httpd")
    assert str(parse_reference("httpd", default_tag=None)) == "docker.io/library/httpd"
    assert parse_reference("httpd", default_tag=None).familiar() == "httpd"
    assert parse_reference("httpd", default_tag="stable").tag == "stable"
    # a digest alone means no default tag; an explicit tag is kept whatever the default
    assert parse_reference(f"httpd@{D}").tag is None
    assert parse_reference("httpd:1", default_tag=None).tag == "1"


def test_with_tag_and_digest() -> None:
    ref = parse_reference("httpd")
    assert str(ref.with_tag("2.4")) == "docker.io/library/httpd:2.4"
    both = ref.with_digest(D)
    assert str(both) == f"docker.io/library/httpd:latest@{D}"
    assert str(both.with_tag("x")) == f"docker.io/library/httpd:x@{D}"
    assert str(both.name_only()) == "docker.io/library/httpd"
    assert ref.tag == "latest"  # frozen: the original is untouched
    with pytest.raises(AttributeError):
        ref.tag = "x"  # type: ignore[misc]
    with pytest.raises(InvalidReference, match="^invalid tag format$"):
        ref.with_tag("-bad")
    with pytest.raises(InvalidReference, match="^invalid checksum digest length$"):
        ref.with_digest("sha256:abc")
    with pytest.raises(InvalidReference, match="^invalid checksum digest format$"):
        ref.with_digest("foo")


@pytest.mark.parametrize(
    ("digest", "error"),
    [
        (D, None),
        (f"sha384:{'0' * 96}", None),
        (f"sha512:{'0' * 128}", None),
        ("sha256:", "invalid checksum digest format"),
        (":" + F64, "invalid checksum digest format"),
        (F64, "invalid checksum digest format"),
        ("sha256:" + "F" * 64, "invalid checksum digest format"),
        ("sha256:" + "g" * 64, "invalid checksum digest format"),
        ("sha256:" + "f" * 63, "invalid checksum digest length"),
        ("md5:" + "f" * 32, "unsupported digest algorithm"),
        ("MD5:" + "f" * 32, "invalid checksum digest format"),
    ],
)
def test_validate_digest(digest: str, error: str | None) -> None:
    if error is None:
        assert validate_digest(digest) == digest
    else:
        with pytest.raises(InvalidReference) as info:
            validate_digest(digest)
        assert str(info.value) == error


def test_validate_tag() -> None:
    assert validate_tag("v1.0_rc-2") == "v1.0_rc-2"
    for bad in ("", ".x", "-x", "a" * 129, "a b", "a/b", "a:b"):
        with pytest.raises(InvalidReference, match="^invalid tag format$"):
            validate_tag(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a", True),
        ("0f3a", True),
        ("abc123", True),
        (F64, True),
        (D, True),
        ("sha256:0f3a", True),
        ("f" * 65, False),
        ("sha256:", False),
        ("ABC123", False),
        ("httpd", False),
        ("sha512:" + "f" * 64, False),
        ("abc:latest", False),
        ("", False),
        ("abc\n", False),
    ],
)
def test_is_image_id_prefix(text: str, expected: bool) -> None:
    assert is_image_id_prefix(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "a" * 5000 + "!",
        "a-" * 3000 + "!",
        "A" + "-a" * 5000 + "!/x",
        "a/" * 3000 + "!",
        "x.com/" + "a" * 5000 + "@",
    ],
)
def test_pathological_inputs_fail_fast(text: str) -> None:
    # The separator pattern is written without nested empty-matching quantifiers; this would hang otherwise.
    with pytest.raises(InvalidReference):
        parse_reference(text)
