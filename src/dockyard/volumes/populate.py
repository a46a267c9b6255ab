"""A new volume takes the image's content at the path it is mounted on, as Docker does on its first
mount (unless `nocopy`): files, directories, symlinks, hard links, devices, with their owners, modes,
times and xattrs, and the directory's own owner and mode."""

from __future__ import annotations

import os
import subprocess

from .model import VolumeError


def is_empty(directory: str) -> bool:
    with os.scandir(directory) as entries:
        return next(entries, None) is None


def copy_image_content(source: str, volume_dir: str) -> bool:
    """Copy `source` (a directory in the container's mounted root, already resolved inside it) into an
    empty `volume_dir`. False when there was nothing to copy or the volume already holds something."""
    if not os.path.isdir(source) or os.path.islink(source) or not is_empty(volume_dir):
        return False
    # coreutils' cp -a keeps everything Docker's copy keeps (and hard links between the copied files);
    # "source/." copies the directory's own owner, mode and times onto the volume's directory as well
    done = subprocess.run(
        ["cp", "-a", "--", os.path.join(source, "."), volume_dir],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise VolumeError(f"copying the image's content into the volume failed: {done.stderr.strip()}", 500)
    return True
