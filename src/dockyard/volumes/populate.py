"""A new volume takes the image's content at the path it is mounted on, as Docker does on its first
mount (unless `nocopy`): files, directories, symlinks, hard links, devices, with their owners, modes,
times and xattrs, and the directory's own owner and mode."""

from __future__ import annotations

import os
import subprocess

from ..linux.inroot import RootDir
from .model import VolumeError


def is_empty(directory: str) -> bool:
    with os.scandir(directory) as entries:
        return next(entries, None) is None


def copy_image_content(rootfs: str, destination: str, volume_dir: str) -> bool:
    """Copy what the image has at `destination` (resolved inside the container's mounted `rootfs`, its
    links followed as if the rootfs were `/`) into an empty `volume_dir`. False when there is nothing to
    copy (missing, not a directory) or the volume already holds something. A destination whose links
    lead out of the rootfs is an error, never followed."""
    if not is_empty(volume_dir):
        return False
    with RootDir(rootfs) as root:
        try:
            fd = root.open_dir(destination)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as e:
            raise VolumeError(
                f"copying the image's content at {destination} into the volume: {_reason(e)}", 500
            ) from None
    try:
        # coreutils' cp -a keeps everything Docker's copy keeps (and hard links between the copied
        # files), and never follows a link it copies; "source/." copies the directory's own owner, mode
        # and times onto the volume's directory as well. The source is the directory found, passed to
        # cp as its descriptor: nothing resolves the destination's path again.
        done = subprocess.run(
            ["cp", "-a", "--", f"/proc/self/fd/{fd}/.", volume_dir],
            capture_output=True,
            text=True,
            check=False,
            pass_fds=(fd,),
        )
    finally:
        os.close(fd)
    if done.returncode != 0:
        raise VolumeError(f"copying the image's content into the volume failed: {done.stderr.strip()}", 500)
    return True


def _reason(e: OSError) -> str:
    return e.strerror or str(e)
