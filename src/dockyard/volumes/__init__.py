"""Volumes: the `local` driver and the service containers and the API use (see service.py)."""

from __future__ import annotations

from .model import ANONYMOUS_LABEL, LOCAL_DRIVER, Volume, VolumeError, validate_name
from .populate import copy_image_content
from .service import VolumeService

__all__ = [
    "ANONYMOUS_LABEL",
    "LOCAL_DRIVER",
    "Volume",
    "VolumeError",
    "VolumeService",
    "copy_image_content",
    "validate_name",
]
