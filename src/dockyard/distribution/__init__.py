"""The registry client: endpoints and mirrors, authentication, manifests and platforms, blobs.

Names are imported lazily, on first use: the CLI's ``login``/``logout`` import
``dockyard.distribution.auth`` for the config.json helpers without paying for aiohttp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    # endpoints
    "Endpoint": "endpoints",
    "RegistryHosts": "endpoints",
    # auth
    "AuthConfig": "auth",
    "Challenge": "auth",
    "DOCKER_HUB_SERVER": "auth",
    "TokenCache": "auth",
    "credential_key": "auth",
    "decode_registry_auth": "auth",
    "find_credentials": "auth",
    "load_credentials": "auth",
    "parse_challenges": "auth",
    "remove_credentials": "auth",
    "store_credentials": "auth",
    # manifests
    "ALL_MANIFEST_TYPES": "manifests",
    "DOCKER_CONFIG": "manifests",
    "DOCKER_FOREIGN_LAYER": "manifests",
    "DOCKER_LAYER": "manifests",
    "DOCKER_LAYER_UNCOMPRESSED": "manifests",
    "DOCKER_MANIFEST": "manifests",
    "DOCKER_MANIFEST_LIST": "manifests",
    "INDEX_TYPES": "manifests",
    "MANIFEST_TYPES": "manifests",
    "OCI_CONFIG": "manifests",
    "OCI_INDEX": "manifests",
    "OCI_LAYER": "manifests",
    "OCI_LAYER_GZIP": "manifests",
    "OCI_LAYER_ZSTD": "manifests",
    "OCI_MANIFEST": "manifests",
    "Descriptor": "manifests",
    "Index": "manifests",
    "Manifest": "manifests",
    "Platform": "manifests",
    "layer_compression": "manifests",
    "parse_manifest": "manifests",
    "select_platform": "manifests",
    # client
    "BlobStream": "client",
    "RegistryClient": "client",
    # verification
    "DigestVerifier": "verify",
    "VerifyingReader": "verify",
    # errors
    "AccessDenied": "errors",
    "DigestMismatch": "errors",
    "InvalidPlatform": "errors",
    "InvalidRegistryAuth": "errors",
    "ManifestUnknown": "errors",
    "NoMatchingPlatform": "errors",
    "NotFound": "errors",
    "RegistryError": "errors",
    "RegistryUnreachable": "errors",
    "Unauthorized": "errors",
    "UnsupportedManifest": "errors",
}

__all__ = [
    "ALL_MANIFEST_TYPES",
    "AccessDenied",
    "AuthConfig",
    "BlobStream",
    "Challenge",
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_HUB_SERVER",
    "DOCKER_LAYER",
    "DOCKER_LAYER_UNCOMPRESSED",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "Descriptor",
    "DigestMismatch",
    "DigestVerifier",
    "Endpoint",
    "INDEX_TYPES",
    "Index",
    "InvalidPlatform",
    "InvalidRegistryAuth",
    "MANIFEST_TYPES",
    "Manifest",
    "ManifestUnknown",
    "NoMatchingPlatform",
    "NotFound",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "Platform",
    "RegistryClient",
    "RegistryError",
    "RegistryHosts",
    "RegistryUnreachable",
    "TokenCache",
    "Unauthorized",
    "UnsupportedManifest",
    "VerifyingReader",
    "credential_key",
    "decode_registry_auth",
    "find_credentials",
    "layer_compression",
    "load_credentials",
    "parse_challenges",
    "parse_manifest",
    "remove_credentials",
    "select_platform",
    "store_credentials",
]

if TYPE_CHECKING:
    from dockyard.distribution.auth import (
        DOCKER_HUB_SERVER,
        AuthConfig,
        Challenge,
        TokenCache,
        credential_key,
        decode_registry_auth,
        find_credentials,
        load_credentials,
        parse_challenges,
        remove_credentials,
        store_credentials,
    )
    from dockyard.distribution.client import BlobStream, RegistryClient
    from dockyard.distribution.endpoints import Endpoint, RegistryHosts
    from dockyard.distribution.errors import (
        AccessDenied,
        DigestMismatch,
        InvalidPlatform,
        InvalidRegistryAuth,
        ManifestUnknown,
        NoMatchingPlatform,
        NotFound,
        RegistryError,
        RegistryUnreachable,
        Unauthorized,
        UnsupportedManifest,
    )
    from dockyard.distribution.manifests import (
        ALL_MANIFEST_TYPES,
        DOCKER_CONFIG,
        DOCKER_FOREIGN_LAYER,
        DOCKER_LAYER,
        DOCKER_LAYER_UNCOMPRESSED,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
        INDEX_TYPES,
        MANIFEST_TYPES,
        OCI_CONFIG,
        OCI_INDEX,
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        OCI_MANIFEST,
        Descriptor,
        Index,
        Manifest,
        Platform,
        layer_compression,
        parse_manifest,
        select_platform,
    )
    from dockyard.distribution.verify import DigestVerifier, VerifyingReader


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
