"""Manifests, indexes and platforms: parsing, media type detection, and platform choice."""

from __future__ import annotations

import hashlib
import json

import pytest
import testimages

from dockyard.distribution import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Index,
    InvalidPlatform,
    Manifest,
    NoMatchingPlatform,
    Platform,
    UnsupportedManifest,
    layer_compression,
    parse_manifest,
    select_platform,
)
from dockyard.distribution.manifests import Descriptor

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------- platforms


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/arm/v7", Platform("linux", "arm", "v7")),
        ("linux/arm", Platform("linux", "arm")),
        ("linux/arm64", Platform("linux", "arm64")),
        ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
        ("linux/aarch64", Platform("linux", "arm64")),
        ("linux/x86_64", Platform("linux", "amd64")),
        ("linux/armhf", Platform("linux", "arm")),  # v7, the default, is left implicit as containerd does
        ("linux/armel", Platform("linux", "arm", "v6")),
        ("LINUX/AMD64", Platform("linux", "amd64")),
        ("linux/amd64/v3", Platform("linux", "amd64", "v3")),
        ("linux/arm/7", Platform("linux", "arm", "v7")),
    ],
)
def test_platform_parse(spec: str, expected: Platform) -> None:
    assert Platform.parse(spec) == expected


def test_platform_parse_single_component_takes_host_defaults() -> None:
    host = Platform.host()
    assert Platform.parse("linux") == Platform("linux", host.architecture, host.variant)
    assert Platform.parse("arm64") == Platform(host.os, "arm64")
    assert Platform.parse("windows").os == "windows"


@pytest.mark.parametrize(
    "spec", ["", "linux/", "linux/amd64/v1/x", "plan10/amd64", "linux/z80", "lin ux/amd64"]
)
def test_platform_parse_rejects(spec: str) -> None:
    with pytest.raises(InvalidPlatform) as exc:
        Platform.parse(spec)
    assert str(exc.value) == f'"{spec}": unknown operating system or architecture: invalid argument'


def test_platform_str() -> None:
    assert str(Platform("linux", "amd64")) == "linux/amd64"
    assert str(Platform("linux", "arm", "v7")) == "linux/arm/v7"
    assert str(Platform.parse("linux/arm64/v8")) == "linux/arm64/v8"


def test_platform_host_is_normalized(monkeypatch: pytest.MonkeyPatch) -> None:
    import dockyard.distribution.manifests as manifests

    for machine, expected in [
        ("x86_64", "linux/amd64"),
        ("aarch64", "linux/arm64/v8"),
        ("armv7l", "linux/arm/v7"),
        ("armv6l", "linux/arm/v6"),
        ("i686", "linux/386"),
        ("s390x", "linux/s390x"),
    ]:
        monkeypatch.setattr(manifests._platform, "machine", lambda m=machine: m)
        assert str(Platform.host()) == expected


def test_platform_matching_variants() -> None:
    arm64 = Platform("linux", "arm64", "v8")
    assert arm64.matches(Platform("linux", "arm64"))  # v8 is arm64's default
    assert arm64.matches(Platform("linux", "arm64", "v8"))
    assert arm64.matches(Platform("linux", "arm", "v7"))  # arm64 runs 32-bit arm
    assert not arm64.matches(Platform("linux", "amd64"))
    arm7 = Platform("linux", "arm", "v7")
    assert arm7.matches(Platform("linux", "arm"))  # arm defaults to v7
    assert arm7.matches(Platform("linux", "arm", "v6"))
    assert arm7.matches(Platform("linux", "arm", "v5"))
    assert not arm7.matches(Platform("linux", "arm", "v8"))
    assert not Platform("linux", "arm", "v6").matches(arm7)
    v3 = Platform("linux", "amd64", "v3")
    assert v3.matches(Platform("linux", "amd64", "v2"))
    assert v3.matches(Platform("linux", "amd64", "v1"))
    assert v3.matches(Platform("linux", "amd64"))
    assert not v3.matches(Platform("linux", "amd64", "v4"))
    assert Platform("linux", "amd64").matches(Platform("linux", "amd64", "v1"))
    assert not Platform("linux", "amd64").matches(Platform("linux", "amd64", "v2"))
    assert not Platform("linux", "amd64").matches(Platform("windows", "amd64"))


def test_platform_compatible_order() -> None:
    assert [str(p) for p in Platform("linux", "amd64", "v3").compatible()] == [
        "linux/amd64/v3",
        "linux/amd64/v2",
        "linux/amd64",
        "linux/386",
    ]
    assert [str(p) for p in Platform("linux", "arm64", "v8").compatible()] == [
        "linux/arm64",
        "linux/arm/v8",
        "linux/arm/v7",
        "linux/arm/v6",
        "linux/arm/v5",
    ]


# ---------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("media", ["docker", "oci"])
def test_parse_manifest_from_testimages(media: str) -> None:
    image = testimages.build_image("httpd", arch="amd64", media=media)
    parsed = parse_manifest(image.manifest.media_type, image.manifest.data)
    assert isinstance(parsed, Manifest)
    assert parsed.media_type == image.manifest.media_type
    assert parsed.digest == image.manifest.digest
    assert parsed.data == image.manifest.data
    assert parsed.config.digest == image.config.digest
    assert parsed.config.media_type == image.config.media_type
    assert parsed.config.size == len(image.config.data)
    assert [layer.digest for layer in parsed.layers] == [layer.digest for layer in image.layers]
    assert all(layer_compression(layer.media_type) == "gzip" for layer in parsed.layers)


@pytest.mark.parametrize("media", ["docker", "oci"])
def test_parse_index_from_testimages(media: str) -> None:
    images = testimages.build_multiplatform("busybox", media=media, arches=("amd64", "arm64", "arm/v7"))
    blob = testimages.build_index(images, media)
    parsed = parse_manifest(blob.media_type, blob.data)
    assert isinstance(parsed, Index)
    assert parsed.media_type == (OCI_INDEX if media == "oci" else DOCKER_MANIFEST_LIST)
    assert parsed.digest == blob.digest
    assert [d.platform for d in parsed.manifests] == [
        Platform("linux", "amd64"),
        Platform("linux", "arm64"),
        Platform("linux", "arm", "v7"),
    ]
    assert [d.digest for d in parsed.manifests] == [img.digest for img in images]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "", "application/octet-stream"])
def test_generic_content_type_uses_body_media_type(content_type: str) -> None:
    image = testimages.build_image("busybox", arch="amd64", media="docker")
    parsed = parse_manifest(content_type, image.manifest.data)
    assert isinstance(parsed, Manifest) and parsed.media_type == DOCKER_MANIFEST


def test_oci_body_without_media_type_is_recognised_by_shape() -> None:
    manifest = {
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": DIGEST_A, "size": 2},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": DIGEST_B, "size": 3}
        ],
    }
    parsed = parse_manifest("application/json", json.dumps(manifest).encode())
    assert isinstance(parsed, Manifest) and parsed.media_type == OCI_MANIFEST
    assert layer_compression(parsed.layers[0].media_type) == "zstd"
    index = {"schemaVersion": 2, "manifests": []}
    assert isinstance(parse_manifest("", json.dumps(index).encode()), Index)
    # With a specific Content-Type and no mediaType in the body, the header decides.
    assert parse_manifest(OCI_MANIFEST, json.dumps(manifest).encode()).media_type == OCI_MANIFEST


def test_content_type_parameters_are_ignored() -> None:
    image = testimages.build_image("busybox", arch="amd64", media="oci")
    parsed = parse_manifest(OCI_MANIFEST + "; charset=utf-8", image.manifest.data)
    assert parsed.media_type == OCI_MANIFEST


def test_digest_defaults_to_sha256_of_body_and_is_kept_when_given() -> None:
    image = testimages.build_image("busybox", arch="amd64")
    assert parse_manifest(DOCKER_MANIFEST, image.manifest.data).digest == sha(image.manifest.data)
    assert parse_manifest(DOCKER_MANIFEST, image.manifest.data, DIGEST_A).digest == DIGEST_A


def test_descriptor_details() -> None:
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": DIGEST_A,
            "size": 7,
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                "digest": DIGEST_B,
                "size": 9,
                "urls": ["https://example.invalid/layer"],
                "annotations": {"k": "v"},
            }
        ],
    }
    parsed = parse_manifest(DOCKER_MANIFEST, json.dumps(manifest).encode())
    assert isinstance(parsed, Manifest)
    assert parsed.layers[0] == Descriptor(
        media_type="application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        digest=DIGEST_B,
        size=9,
        urls=["https://example.invalid/layer"],
        annotations={"k": "v"},
    )


def test_schema1_is_refused_with_dockers_message() -> None:
    body = json.dumps({"schemaVersion": 1, "name": "x", "tag": "1", "fsLayers": []}).encode()
    for content_type in (
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/json",
    ):
        with pytest.raises(UnsupportedManifest) as exc:
            parse_manifest(content_type, body, ref="docker.io/library/old:1")
        assert str(exc.value) == (
            "Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. "
            "Suggest the author of docker.io/library/old:1 to upgrade the image to the OCI Format or Docker "
            "Image manifest v2, schema 2. More information at https://docs.docker.com/go/deprecated-image-specs/"
        )


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("text/html", b"<html></html>", "invalid manifest"),
        (OCI_MANIFEST, b"[]", "invalid manifest: not a JSON object"),
        ("application/vnd.example+json", b"{}", "unsupported manifest media type and no default available"),
        (OCI_MANIFEST, json.dumps({"schemaVersion": 2, "layers": []}).encode(), "missing config"),
        (
            OCI_MANIFEST,
            json.dumps(
                {"config": {"mediaType": "x", "digest": "sha256:../../etc", "size": 1}, "layers": []}
            ).encode(),
            "invalid manifest: config",
        ),
        (
            OCI_MANIFEST,
            json.dumps({"config": {"mediaType": "x", "digest": DIGEST_A, "size": -1}, "layers": []}).encode(),
            "size must be a non-negative integer",
        ),
        (OCI_INDEX, json.dumps({"manifests": {}}).encode(), "needs a manifests list"),
    ],
)
def test_bad_manifests(content_type: str, body: bytes, message: str) -> None:
    with pytest.raises(UnsupportedManifest) as exc:
        parse_manifest(content_type, body)
    assert message in str(exc.value)


def test_layer_compression() -> None:
    assert layer_compression("application/vnd.oci.image.layer.v1.tar") == "none"
    assert layer_compression("application/vnd.oci.image.layer.v1.tar+gzip") == "gzip"
    assert layer_compression("application/vnd.oci.image.layer.v1.tar+zstd") == "zstd"
    assert layer_compression("application/vnd.docker.image.rootfs.diff.tar.gzip") == "gzip"
    assert layer_compression("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip") == "gzip"
    assert layer_compression("application/vnd.oci.image.config.v1+json") is None


# ------------------------------------------------------------------------------------------- selection


def _index(*platforms: Platform | None, media_type: str = OCI_MANIFEST) -> Index:
    manifests = [
        Descriptor(media_type, "sha256:" + f"{i:x}" * 64, 100, platform=p) for i, p in enumerate(platforms, 1)
    ]
    return Index(OCI_INDEX, DIGEST_A, manifests)


def test_select_platform_exact_and_compatible() -> None:
    index = _index(
        Platform("linux", "amd64"),
        Platform("linux", "arm64", "v8"),
        Platform("linux", "arm", "v7"),
        Platform("linux", "arm", "v6"),
    )
    assert select_platform(index, Platform("linux", "amd64")) is index.manifests[0]
    assert select_platform(index, Platform.parse("linux/arm64")) is index.manifests[1]
    assert select_platform(index, Platform.parse("linux/arm64/v8")) is index.manifests[1]
    assert select_platform(index, Platform.parse("linux/arm/v7")) is index.manifests[2]
    assert select_platform(index, Platform.parse("linux/arm")) is index.manifests[2]
    assert select_platform(index, Platform.parse("linux/arm/v6")) is index.manifests[3]
    # amd64/v3 takes the plain amd64 image
    assert select_platform(index, Platform.parse("linux/amd64/v3")) is index.manifests[0]


def test_select_platform_prefers_the_best_match_over_index_order() -> None:
    index = _index(Platform("linux", "arm", "v6"), Platform("linux", "arm", "v7"), Platform("linux", "arm64"))
    assert select_platform(index, Platform("linux", "arm", "v7")) is index.manifests[1]
    assert select_platform(index, Platform("linux", "arm64", "v8")) is index.manifests[2]
    only_arm = _index(Platform("linux", "arm", "v6"), Platform("linux", "arm", "v7"))
    assert select_platform(only_arm, Platform("linux", "arm64", "v8")) is only_arm.manifests[1]


def test_select_platform_skips_attestations_and_platformless_entries() -> None:
    index = Index(
        OCI_INDEX,
        DIGEST_A,
        [
            Descriptor(OCI_MANIFEST, DIGEST_A, 1, platform=None),
            Descriptor(OCI_MANIFEST, DIGEST_B, 1, platform=Platform("unknown", "unknown")),
            Descriptor(OCI_INDEX, DIGEST_A, 1, platform=Platform("linux", "amd64")),
        ],
    )
    with pytest.raises(NoMatchingPlatform):
        select_platform(index, Platform("linux", "amd64"))


def test_no_matching_platform_message() -> None:
    index = _index(Platform("linux", "arm64"), Platform("windows", "amd64"))
    with pytest.raises(NoMatchingPlatform) as exc:
        select_platform(index, Platform("linux", "amd64"))
    assert str(exc.value) == "no matching manifest for linux/amd64 in the manifest list entries"
    with pytest.raises(NoMatchingPlatform) as exc:
        select_platform(_index(Platform("linux", "amd64")), Platform.parse("linux/arm/v7"))
    assert str(exc.value) == "no matching manifest for linux/arm/v7 in the manifest list entries"
    with pytest.raises(NoMatchingPlatform) as exc:
        select_platform(_index(), Platform("linux", "arm64", "v8"))
    assert str(exc.value) == "no matching manifest for linux/arm64/v8 in the manifest list entries"
