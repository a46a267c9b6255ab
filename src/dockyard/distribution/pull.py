"""Pull: resolve a reference to one platform's manifest, then fetch its layers concurrently, each streamed
through digest verification and decompression straight into its snapshot, and register the image.

A layer whose parent snapshot is ready is unpacked while it downloads; one whose parent is still on
its way is downloaded into the content store first and unpacked as soon as the parent is committed
(layers stack, so they are committed in order). Two pulls that share a layer fetch it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..images.content import DigestMismatch, sha256_digest
from ..images.ingest import ChunkPipe, DecompressingReader
from ..images.layers import LayerError
from ..images.service import ImageError, ImageService
from ..images.snapshots import VFS, PendingSnapshot, chain_ids
from ..images.store import ImageRecord, LayerRecord
from ..reference import Reference
from ..units import human_size
from .auth import AuthConfig
from .client import RegistryClient
from .manifests import Index, Manifest, Platform, select_platform

log = logging.getLogger("dockyard.pull")

Progress = Callable[[dict[str, Any]], None]
PROGRESS_INTERVAL = 0.1  # seconds between two progress lines of one layer


@dataclass
class PullPlan:
    ref: Reference
    digest: str  # what the reference resolved to (an index or a manifest): the "Digest:" line
    manifest: Manifest
    config_blob: bytes
    config: dict[str, Any]
    stored: list[tuple[str, bytes]] = field(default_factory=list)  # index/manifest blobs to keep

    @property
    def image_id(self) -> str:
        return sha256_digest(self.config_blob)

    @property
    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids") or [])


def progress_message(
    status: str, layer: str | None = None, current: int | None = None, total: int | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {"status": status}
    if layer is not None:
        message["progressDetail"] = {}
        if current is not None:
            message["progressDetail"] = {"current": current, **({"total": total} if total else {})}
            message["progress"] = _bar(current, total)
        message["id"] = layer
    return message


def _bar(current: int, total: int | None, width: int = 50) -> str:
    if not total:
        return f"{human_size(current):>8}"
    filled = min(width, int(width * current / total))
    arrow = ">" if filled < width else "="
    bar = "=" * max(0, filled - 1) + arrow + " " * (width - filled)
    return f"[{bar}] {human_size(current):>8}/{human_size(total)}"


class Puller:
    def __init__(
        self, images: ImageService, client: RegistryClient, max_concurrent_downloads: int = 3
    ) -> None:
        self.images = images
        self.client = client
        self.max_concurrent = max_concurrent_downloads
        # chain ID -> the future of the pull that is unpacking it, shared by concurrent pulls
        self._inflight: dict[str, asyncio.Future[None]] = {}

    async def resolve(self, ref: Reference, platform: Platform | None, auth: AuthConfig | None) -> PullPlan:
        """Fetch the manifest (choosing the platform from an index) and the config: errors come before
        any progress is streamed, so the API can still answer them with a plain status code."""
        wanted = platform or Platform.host()
        top = await self.client.get_manifest(ref, auth)
        stored = [(top.digest, top.data)]
        manifest = top
        if isinstance(top, Index):
            chosen = select_platform(top, wanted)
            manifest = await self.client.get_manifest(ref.name_only().with_digest(chosen.digest), auth)
            stored.append((manifest.digest, manifest.data))
        if not isinstance(manifest, Manifest):
            raise ImageError(f"unsupported manifest for {ref.familiar()}: nested index", 500)
        config_blob = await self.client.get_blob(ref, manifest.config.digest, auth)
        config = json.loads(config_blob)
        if platform is not None and isinstance(top, Manifest):
            actual = Platform(config.get("os", ""), config.get("architecture", ""), config.get("variant", ""))
            if (actual.os, actual.architecture) != (platform.os, platform.architecture):
                raise ImageError(
                    f"image with reference {ref.familiar()} was found but does not match the specified "
                    f"platform: wanted {platform}, actual: {actual}",
                    404,
                )
        plan = PullPlan(ref, top.digest, manifest, config_blob, config, stored)
        if len(plan.diff_ids) != len(manifest.layers):
            raise ImageError(
                f"invalid image {ref.familiar()}: the config lists {len(plan.diff_ids)} layers "
                f"but the manifest has {len(manifest.layers)}",
                500,
            )
        return plan

    async def fetch(
        self, plan: PullPlan, auth: AuthConfig | None, progress: Progress
    ) -> tuple[ImageRecord, str]:
        """Bring the layers in and register the image; returns it and the final "Status:" line."""
        ref = plan.ref
        progress(progress_message(f"Pulling from {ref.path}", ref.tag or ref.digest or "latest"))
        chains = chain_ids(plan.diff_ids)
        blobs = [d.digest for d in plan.manifest.layers]
        with self.images.pinned(chains + blobs):
            if plan.image_id not in self.images.store.images or not all(
                self.images.snapshots.exists(c) for c in chains
            ):
                await self._fetch_layers(plan, chains, auth, progress)
            async with self.images.lock:
                for digest, data in plan.stored:
                    self.images.content.put(data, digest)
                layers = [
                    self._layer_record(d.digest, d.media_type, d.size, diff_id)
                    for d, diff_id in zip(plan.manifest.layers, plan.diff_ids, strict=True)
                ]
                record = self.images.register(
                    plan.config_blob,
                    layers,
                    plan.manifest.media_type,
                    extra={
                        "manifests": [digest for digest, _ in plan.stored],
                        "manifest": plan.manifest.digest,
                    },
                )
                store = self.images.store
                previous = None
                if ref.tag:
                    previous = store.set_ref(Reference(ref.domain, ref.path, ref.tag, None), record.id)
                store.set_ref(Reference(ref.domain, ref.path, None, plan.digest), record.id)
        progress(progress_message(f"Digest: {plan.digest}"))
        shown = ref.familiar()
        if ref.tag and previous == record.id:
            return record, f"Status: Image is up to date for {shown}"
        return record, f"Status: Downloaded newer image for {shown}"

    def _layer_record(self, digest: str, media_type: str, size: int, diff_id: str) -> LayerRecord:
        """The layer as this manifest names it; but when the layer was already unpacked from another
        blob (the same tar compressed differently), that stored blob, so push and save always find one."""
        if not self.images.content.has(digest):
            stored = self.images.stored_layer(diff_id)
            if stored is not None:
                return stored
        return LayerRecord(digest, media_type, size, diff_id)

    async def _fetch_layers(
        self, plan: PullPlan, chains: list[str], auth: AuthConfig | None, progress: Progress
    ) -> None:
        loop = asyncio.get_running_loop()
        limiter = asyncio.Semaphore(self.max_concurrent)
        committed: list[asyncio.Future[None]] = [loop.create_future() for _ in chains]
        tasks = [
            asyncio.create_task(self._layer(plan, i, chains, committed, limiter, auth, progress))
            for i in range(len(chains))
        ]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            for fut in committed:
                if not fut.done():
                    fut.cancel()
                elif not fut.cancelled():
                    fut.exception()  # mark retrieved: the failure is reported once, by gather

    async def _layer(
        self,
        plan: PullPlan,
        i: int,
        chains: list[str],
        committed: list[asyncio.Future[None]],
        limiter: asyncio.Semaphore,
        auth: AuthConfig | None,
        progress: Progress,
    ) -> None:
        desc = plan.manifest.layers[i]
        short = desc.digest.split(":", 1)[1][:12]
        chain, parent = chains[i], (chains[i - 1] if i else "")
        snapshots = self.images.snapshots
        try:
            if snapshots.exists(chain):
                progress(progress_message("Already exists", short))
            elif chain in self._inflight:
                progress(progress_message("Waiting", short))
                await asyncio.shield(self._inflight[chain])
                progress(progress_message("Pull complete", short))
            else:
                owner: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._inflight[chain] = owner
                try:
                    await self._bring_layer(plan, i, chain, parent, committed, limiter, auth, progress, short)
                    owner.set_result(None)
                except BaseException as e:
                    owner.set_exception(e if isinstance(e, Exception) else asyncio.CancelledError())
                    owner.exception()
                    raise
                finally:
                    del self._inflight[chain]
            committed[i].set_result(None)
        except BaseException as e:
            if not committed[i].done():
                committed[i].set_exception(e if isinstance(e, Exception) else asyncio.CancelledError())
            raise

    async def _bring_layer(
        self,
        plan: PullPlan,
        i: int,
        chain: str,
        parent: str,
        committed: list[asyncio.Future[None]],
        limiter: asyncio.Semaphore,
        auth: AuthConfig | None,
        progress: Progress,
        short: str,
    ) -> None:
        """Unpack the layer as soon as its bytes are here; commit it once its parent is committed.

        With overlayfs a layer unpacks into a directory of its own, so layers unpack concurrently and
        only the commit (a rename, after giving implicitly created directories the attributes of the
        layers below) waits for the order. The copy-based snapshotter starts from a copy of the parent,
        so there the download goes ahead and the unpacking waits.
        """
        desc = plan.manifest.layers[i]
        diff_id = plan.diff_ids[i]
        ordered = self.images.snapshots.driver == VFS
        pending: PendingSnapshot | None = None
        try:
            if not self.images.content.has(desc.digest):
                progress(progress_message("Pulling fs layer", short))
                if limiter.locked():
                    progress(progress_message("Waiting", short))
                async with limiter:
                    if ordered:
                        await self._download(plan, desc, auth, progress, short)
                    else:
                        pending = await self._stream_and_apply(
                            plan, desc, chain, parent, diff_id, auth, progress, short
                        )
            if parent:
                await committed[i - 1]
            if pending is None:
                pending = await self._apply_from_store(
                    desc.digest, chain, parent, diff_id, progress, short, desc.size
                )
            pending.commit()
        except BaseException as e:
            if pending is not None:
                pending.abort()
            converted = _layer_error(e)
            if converted is e:
                raise
            raise converted from e
        progress(progress_message("Pull complete", short))

    async def _download(
        self, plan: PullPlan, desc: Any, auth: AuthConfig | None, progress: Progress, short: str
    ) -> None:
        writer = self.images.content.writer(desc.digest)
        try:
            stream = await self.client.open_blob(plan.ref, desc.digest, auth, size=desc.size)
            total = stream.size or desc.size
            last = 0.0
            async with stream:
                async for chunk in stream:
                    writer.write(chunk)
                    now = time.monotonic()
                    if now - last >= PROGRESS_INTERVAL:
                        last = now
                        progress(progress_message("Downloading", short, writer.size, total))
            progress(progress_message("Verifying Checksum", short))
            writer.commit()
            progress(progress_message("Download complete", short))
        except BaseException:
            writer.abort()
            raise

    async def _apply_from_store(
        self, digest: str, chain: str, parent: str, diff_id: str, progress: Progress, short: str, total: int
    ) -> PendingSnapshot:
        """Unpack a stored blob into a new pending snapshot (the caller commits or aborts it)."""
        pending = self.images.snapshots.prepare(chain, parent, diff_id)
        try:
            with self.images.content.open(digest) as blob:
                reader = DecompressingReader(blob)
                work = asyncio.get_running_loop().run_in_executor(None, pending.apply, reader)
                await self._await_extraction(work, lambda: reader, progress, short, total)
            self._check_diff_id(reader.diff_id, diff_id)
            return pending
        except BaseException:
            pending.abort()
            raise

    async def _stream_and_apply(
        self,
        plan: PullPlan,
        desc: Any,
        chain: str,
        parent: str,
        diff_id: str,
        auth: AuthConfig | None,
        progress: Progress,
        short: str,
    ) -> PendingSnapshot:
        """Download a blob into the content store while a worker thread unpacks it into a new pending
        snapshot; both digests are verified before the blob is committed. Returns the pending snapshot."""
        loop = asyncio.get_running_loop()
        pending = self.images.snapshots.prepare(chain, parent, diff_id)
        writer = self.images.content.writer(desc.digest)
        pipe = ChunkPipe()
        holder: dict[str, DecompressingReader] = {}

        def unpack() -> None:
            reader = DecompressingReader(pipe)
            holder["reader"] = reader
            pending.apply(reader)
            while reader.read(1 << 16):  # trailing bytes past the tar's end still count for the digest
                pass

        work = loop.run_in_executor(None, unpack)
        try:
            stream = await self.client.open_blob(plan.ref, desc.digest, auth, size=desc.size)
            total = stream.size or desc.size
            last = 0.0
            async with stream:
                async for chunk in stream:
                    if work.done():
                        break  # the unpacker failed: its error is raised below
                    writer.write(chunk)
                    if not pipe.put_nowait(chunk):
                        await loop.run_in_executor(None, pipe.put_blocking, chunk)
                    now = time.monotonic()
                    if now - last >= PROGRESS_INTERVAL:
                        last = now
                        progress(progress_message("Downloading", short, writer.size, total))
            if work.done():
                await work
            progress(progress_message("Verifying Checksum", short))
            if writer.digest != desc.digest:
                raise DigestMismatch(f"filesystem layer verification failed for digest {desc.digest}")
            progress(progress_message("Download complete", short))
            pipe.close()
            await self._await_extraction(work, lambda: holder.get("reader"), progress, short, total)
            self._check_diff_id(holder["reader"].diff_id, diff_id)
            writer.commit()
            return pending
        except BaseException as e:
            pipe.abort(e if isinstance(e, Exception) else RuntimeError("cancelled"))
            writer.abort()
            with contextlib.suppress(BaseException):
                await work
            pending.abort()
            raise

    async def _await_extraction(
        self,
        work: asyncio.Future[Any],
        reader: Callable[[], DecompressingReader | None],
        progress: Progress,
        short: str,
        total: int,
    ) -> None:
        """Wait for the unpacking thread, reporting "Extracting" progress from the bytes it has read."""
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(work), PROGRESS_INTERVAL * 2)
                break
            except TimeoutError:
                current = reader()
                if current is not None:
                    progress(progress_message("Extracting", short, current.compressed_read, total))
        current = reader()
        if current is not None:
            progress(progress_message("Extracting", short, current.compressed_read, total))

    @staticmethod
    def _check_diff_id(actual: str, expected: str) -> None:
        if actual != expected:
            raise LayerError(f"layer diff ID {actual} does not match the image config's {expected}")


def _layer_error(error: BaseException) -> BaseException:
    """Docker's wording for what goes wrong while a layer is unpacked."""
    if isinstance(error, LayerError):
        return ImageError(f"failed to register layer: {error}", 500)
    if isinstance(error, DigestMismatch):
        return ImageError(str(error), 500)
    return error
