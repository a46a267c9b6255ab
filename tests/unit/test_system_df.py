"""`system df`: the four rows computed from GET /system/df as the docker CLI computes them."""

from __future__ import annotations

from dockyard.cli.commands.system import disk_usage_rows


def test_rows_follow_the_docker_cli_arithmetic() -> None:
    data = {
        "LayersSize": 4_000_000,
        "Images": [
            {
                "Id": "a",
                "Containers": 1,
                "Size": 3_000_000,
                "VirtualSize": 3_000_000,
                "SharedSize": 1_000_000,
            },
            {
                "Id": "b",
                "Containers": 0,
                "Size": 2_000_000,
                "VirtualSize": 2_000_000,
                "SharedSize": 1_000_000,
            },
        ],
        "Containers": [
            {"State": "running", "SizeRw": 3_000_000},
            {"State": "exited", "SizeRw": 1_000_000},
        ],
        "Volumes": [
            {"Name": "used", "UsageData": {"Size": 5000, "RefCount": 1}},
            {"Name": "idle", "UsageData": {"Size": 5000, "RefCount": 0}},
            {"Name": "unknown", "UsageData": {"Size": -1, "RefCount": 0}},
        ],
        "BuildCache": [],
    }
    rows = {r["Type"]: r for r in disk_usage_rows(data)}
    # images: 4 MB of layers, 2 MB (3 MB less 1 MB shared) used by the image with a container
    assert rows["Images"] == {
        "Type": "Images", "TotalCount": "2", "Active": "1", "Size": "4MB", "Reclaimable": "2MB (50%)",
    }  # fmt: skip
    assert rows["Containers"]["Active"] == "1" and rows["Containers"]["Reclaimable"] == "1MB (25%)"
    assert rows["Local Volumes"]["Size"] == "10kB" and rows["Local Volumes"]["Reclaimable"] == "5kB (50%)"
    assert rows["Build Cache"] == {
        "Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B",
    }  # fmt: skip


def test_nothing_at_all() -> None:
    rows = disk_usage_rows({"LayersSize": 0, "Images": [], "Containers": [], "Volumes": None})
    assert [r["Reclaimable"] for r in rows] == ["0B"] * 4
