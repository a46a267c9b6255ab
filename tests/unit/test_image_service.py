"""The image service's rules (tags, rmi, prune, lookup) over real files in a temporary data root."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile

import pytest

from dockyard.images import ContainerUse, ImageConflict, ImageService, NoSuchImage
from dockyard.images.content import sha256_digest
from dockyard.images.snapshots import chain_ids
from dockyard.images.store import LayerRecord
from dockyard.reference import parse_reference


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def add_image(
    service: ImageService,
    files: list[dict[str, bytes]],
    created: str = "2024-01-01T00:00:00Z",
    labels: dict | None = None,
) -> str:
    layers, parent = [], ""
    tars = [layer_tar(f) for f in files]
    diff_ids = [sha256_digest(t) for t in tars]
    for tar, chain, diff_id in zip(tars, chain_ids(diff_ids), diff_ids, strict=True):
        if not service.snapshots.exists(chain):
            pending = service.snapshots.prepare(chain, parent, diff_id)
            pending.apply(io.BytesIO(tar))
            pending.commit()
        service.content.put(tar)
        layers.append(LayerRecord(diff_id, "application/vnd.docker.image.rootfs.diff.tar", len(tar), diff_id))
        parent = chain
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {"Cmd": ["sh"], "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": f"layer {i}"} for i in range(len(files))],
    }
    return service.register(json.dumps(config).encode(), layers).id


@pytest.fixture
def service(tmp_path) -> ImageService:
    return ImageService(tmp_path / "image", driver="vfs")


def tag(service: ImageService, image_id: str, name: str) -> None:
    asyncio.run(service.tag(image_id, name))


def test_lookup_by_tag_id_prefix_and_digest(service):
    image_id = add_image(service, [{"a": b"1"}])
    tag(service, image_id, "busybox")
    service.store.set_ref(parse_reference("busybox@sha256:" + "a" * 64, default_tag=None), image_id)
    assert service.get("busybox").id == image_id
    assert service.get("docker.io/library/busybox:latest").id == image_id
    assert service.get(image_id[7:19]).id == image_id
    assert service.get(image_id).id == image_id
    assert service.get("busybox@sha256:" + "a" * 64).id == image_id
    with pytest.raises(NoSuchImage, match="No such image: busybox:nope"):
        service.get("busybox:nope")


def test_list_shape_and_filters(service):
    first = add_image(service, [{"a": b"1"}], "2024-01-01T00:00:00Z", labels={"team": "yard"})
    second = add_image(service, [{"b": b"22"}], "2024-02-01T00:00:00.123456789Z")
    tag(service, first, "busybox:1")
    tag(service, first, "127.0.0.1:5000/x/busybox:1")
    images = service.list_images()
    assert [i["Id"] for i in images] == [second, first]  # newest first
    assert images[0]["RepoTags"] == ["<none>:<none>"] and images[0]["RepoDigests"] == ["<none>@<none>"]
    assert sorted(images[1]["RepoTags"]) == ["127.0.0.1:5000/x/busybox:1", "busybox:1"]
    assert images[1]["Created"] == 1704067200 and images[1]["Size"] == 1
    assert [i["Id"] for i in service.list_images(filters={"dangling": ["true"]})] == [second]
    by_ref = service.list_images(filters={"reference": ["busybox"]})
    assert [i["RepoTags"] for i in by_ref] == [["busybox:1"]]
    assert [i["Id"] for i in service.list_images(filters={"label": ["team=yard"]})] == [first]


def test_rmi_untags_then_deletes_and_collects_layers(service):
    image_id = add_image(service, [{"a": b"1"}, {"b": b"2"}])
    tag(service, image_id, "busybox:1")
    tag(service, image_id, "busybox:2")
    assert asyncio.run(service.remove("busybox:1")) == [{"Untagged": "busybox:1"}]
    records = asyncio.run(service.remove("busybox:2"))
    assert records[0] == {"Untagged": "busybox:2"}
    assert records[1] == {"Deleted": image_id}
    assert len(records) == 4  # the image and both layers' snapshots
    assert service.snapshots.all() == {}
    assert list(service.content.digests()) == []


def test_rmi_removes_digest_refs_of_the_same_repo(service):
    image_id = add_image(service, [{"a": b"1"}])
    tag(service, image_id, "busybox")
    service.store.set_ref(parse_reference("busybox@sha256:" + "b" * 64, default_tag=None), image_id)
    records = asyncio.run(service.remove("busybox"))
    assert records[:2] == [{"Untagged": "busybox:latest"}, {"Untagged": "busybox@sha256:" + "b" * 64}]
    assert records[2] == {"Deleted": image_id}


def test_rmi_by_id_with_several_repositories_needs_force(service):
    image_id = add_image(service, [{"a": b"1"}])
    tag(service, image_id, "busybox")
    tag(service, image_id, "other")
    with pytest.raises(ImageConflict, match="image is referenced in multiple repositories"):
        asyncio.run(service.remove(image_id[7:19]))
    records = asyncio.run(service.remove(image_id[7:19], force=True))
    assert {"Deleted": image_id} in records


def test_shared_layers_survive_until_the_last_user_goes(service):
    base = {"base": b"x" * 10}
    one = add_image(service, [base, {"one": b"1"}])
    two = add_image(service, [base, {"two": b"2"}])
    asyncio.run(service.remove(one))
    assert service.snapshots.exists(chain_ids([sha256_digest(layer_tar(base))])[0])
    asyncio.run(service.remove(two))
    assert service.snapshots.all() == {}


def test_container_conflicts(service):
    image_id = add_image(service, [{"a": b"1"}])
    tag(service, image_id, "busybox")
    service.container_users = lambda i: [ContainerUse("c" * 64, running=False)] if i == image_id else []
    with pytest.raises(ImageConflict, match='unable to remove repository reference "busybox" .must force.'):
        asyncio.run(service.remove("busybox"))
    service.container_users = lambda i: [ContainerUse("c" * 64, running=True)]
    with pytest.raises(ImageConflict, match="cannot be forced.*running container cccccccccccc"):
        asyncio.run(service.remove(image_id[7:19], force=True))


def test_prune_dangling_and_all(service):
    tagged = add_image(service, [{"a": b"1"}])
    dangling = add_image(service, [{"b": b"2"}])
    tag(service, tagged, "busybox")
    result = asyncio.run(service.prune(all_images=False))
    assert {"Deleted": dangling} in result["ImagesDeleted"]
    assert tagged in service.store.images
    result = asyncio.run(service.prune(all_images=True))
    assert {"Untagged": "busybox:latest"} in result["ImagesDeleted"]
    assert service.store.images == {}


def test_history_and_inspect(service):
    image_id = add_image(service, [{"a": b"1"}, {"b": b"22"}])
    tag(service, image_id, "busybox")
    history = service.history("busybox")
    assert [h["CreatedBy"] for h in history] == ["layer 1", "layer 0"]
    assert history[0]["Id"] == image_id and history[1]["Id"] == "<missing>"
    assert [h["Size"] for h in history] == [2, 1]
    assert history[0]["Tags"] == ["busybox:latest"]
    data = service.inspect("busybox")
    assert data["Id"] == image_id and data["RepoTags"] == ["busybox:latest"]
    assert data["RootFS"]["Layers"] == [
        sha256_digest(layer_tar({"a": b"1"})),
        sha256_digest(layer_tar({"b": b"22"})),
    ]
    assert data["GraphDriver"]["Name"] == "vfs"


def test_store_survives_a_restart(service, tmp_path):
    image_id = add_image(service, [{"a": b"1"}])
    tag(service, image_id, "busybox:1")
    again = ImageService(tmp_path / "image", driver="vfs")
    assert again.get("busybox:1").id == image_id
