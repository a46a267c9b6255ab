"""Push: upload an image's layers (skipping blobs the registry has, mounting across repositories of the
same registry), its config and its manifest, with Docker's progress messages.

Pulled images keep their compressed blobs, so a push reproduces the manifest the image was pulled with
(same digest). Layers that exist only uncompressed (loaded or imported images) are gzip-compressed once
and the compressed blob is kept for the next push.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from ..images.service import ImageError, ImageService
from ..images.store import ImageRecord, LayerRecord
from ..reference import Reference
from .auth import AuthConfig
from .client import RegistryClient
from .manifests import parse_manifest

log = logging.getLogger("dockyard.push")

Progress = Callable[[dict[str, Any]], None]
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
UNCOMPRESSED = ("application/vnd.docker.image.rootfs.diff.tar", "application/vnd.oci.image.layer.v1.tar")
CHUNK = 1 << 20
PROGRESS_INTERVAL = 0.1


class Pusher:
    def __init__(self, images: ImageService, client: RegistryClient, max_concurrent_uploads: int = 5) -> None:
        self.images = images
        self.client = client
        self.max_concurrent = max_concurrent_uploads

    def resolve(self, ref: Reference) -> ImageRecord:
        try:
            return self.images.get(str(ref))
        except ImageError:
            raise ImageError(
                f"An image does not exist locally with the tag: {ref.familiar_name}", 404
            ) from None

    async def push(self, ref: Reference, auth: AuthConfig | None, progress: Progress) -> str:
        """Push one tag; returns the manifest digest."""
        from .pull import progress_message

        record = self.resolve(ref)
        progress({"status": f"The push refers to repository [{ref.repository}]"})
        layers = list(record.layers)
        for layer in reversed(layers):
            progress(progress_message("Preparing", _short(layer.diff_id)))
        limiter = asyncio.Semaphore(self.max_concurrent)
        results = await asyncio.gather(
            *(self._push_layer(ref, record, i, auth, limiter, progress) for i in range(len(layers)))
        )
        config_blob = self.images.content.read(record.id)
        if not await self.client.blob_exists(ref, record.id, auth):
            await self.client.upload_blob(ref, record.id, len(config_blob), config_blob, auth)
        media_type, manifest = self._manifest(record, results, config_blob)
        digest = await self.client.put_manifest(
            ref.name_only().with_tag(ref.tag or "latest"), media_type, manifest, auth
        )
        self.images.content.put(manifest, digest)
        async with self.images.lock:
            self.images.store.set_ref(Reference(ref.domain, ref.path, None, digest), record.id)
            manifests = sorted(set(record.extra.get("manifests", [])) | {digest})
            self.images.store.update(
                replace(record, layers=results, extra={**record.extra, "manifests": manifests})
            )
        tag = ref.tag or "latest"
        progress({"status": f"{tag}: digest: {digest} size: {len(manifest)}"})
        progress({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(manifest)}})
        return digest

    def _manifest(
        self, record: ImageRecord, layers: list[LayerRecord], config_blob: bytes
    ) -> tuple[str, bytes]:
        """The manifest the image came with when its layers are unchanged; a Docker schema 2 one otherwise."""
        original = record.extra.get("manifest")
        if original and self.images.content.has(original):
            data = self.images.content.read(original)
            try:
                parsed = parse_manifest(record.manifest_media_type, data, original)
            except Exception:  # an unreadable stored manifest: build a fresh one below
                parsed = None
            if parsed is not None and [d.digest for d in getattr(parsed, "layers", [])] == [
                layer.digest for layer in layers
            ]:
                return parsed.media_type, data
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(config_blob), "digest": record.id},
            "layers": [
                {"mediaType": layer.media_type, "size": layer.size, "digest": layer.digest}
                for layer in layers
            ],
        }
        return DOCKER_MANIFEST, json.dumps(manifest, indent=3).encode()

    async def _push_layer(
        self,
        ref: Reference,
        record: ImageRecord,
        i: int,
        auth: AuthConfig | None,
        limiter: asyncio.Semaphore,
        progress: Progress,
    ) -> LayerRecord:
        from .pull import progress_message

        async with limiter:
            layer = record.layers[i]
            short = _short(layer.diff_id)
            if layer.media_type in UNCOMPRESSED or not self.images.content.has(layer.digest):
                layer = await self._compressed(layer)
            if await self.client.blob_exists(ref, layer.digest, auth):
                progress(progress_message("Layer already exists", short))
                return layer
            for source in self._mount_sources(ref, layer):
                if await self.client.mount_blob(ref, layer.digest, source, auth):
                    progress(progress_message(f"Mounted from {source.path}", short))
                    return layer
            last = 0.0

            def sent(count: int) -> None:
                nonlocal last
                now = time.monotonic()
                if now - last >= PROGRESS_INTERVAL or count >= layer.size:
                    last = now
                    progress(progress_message("Pushing", short, count, layer.size))

            await self.client.upload_blob(
                ref, layer.digest, layer.size, self._chunks(layer.digest), auth, sent
            )
            progress(progress_message("Pushed", short))
            return layer

    async def _chunks(self, digest: str) -> AsyncIterator[bytes]:
        with self.images.content.open(digest) as blob:
            while chunk := await asyncio.to_thread(blob.read, CHUNK):
                yield chunk

    async def _compressed(self, layer: LayerRecord) -> LayerRecord:
        """gzip an uncompressed layer into the content store (once), as Docker compresses on push."""
        source = layer.digest if self.images.content.has(layer.digest) else None
        if source is None:
            raise ImageError(f"layer {layer.diff_id} has no stored blob to push", 500)

        def compress() -> tuple[str, int]:
            writer = self.images.content.writer()
            try:
                with (
                    self.images.content.open(source) as src,
                    gzip.GzipFile(
                        fileobj=writer,
                        mode="wb",
                        mtime=0,
                        compresslevel=6,  # type: ignore[arg-type]
                    ) as gz,
                ):
                    shutil.copyfileobj(src, gz, CHUNK)
                return writer.commit(), writer.size
            except BaseException:
                writer.abort()
                raise

        digest, size = await asyncio.to_thread(compress)
        return LayerRecord(digest, DOCKER_LAYER_GZIP, size, layer.diff_id)

    def _mount_sources(self, ref: Reference, layer: LayerRecord) -> list[Reference]:
        """Other repositories of the same registry that an image with this layer came from."""
        sources: dict[str, Reference] = {}
        for other in self.images.store.images.values():
            if not any(mine.digest == layer.digest for mine in other.layers):
                continue
            for known in self.images.store.digests_of(other.id) + self.images.store.tags_of(other.id):
                if known.domain == ref.domain and known.path != ref.path:
                    sources.setdefault(known.path, known)
        return list(sources.values())


def _short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]
