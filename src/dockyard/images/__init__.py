"""Images: references, the content store, snapshots, layer application, and the image service."""

from ..reference import InvalidReference, Reference, parse_reference
from .service import ContainerUse, ImageConflict, ImageError, ImageService, NoSuchImage

__all__ = [
    "ContainerUse",
    "ImageConflict",
    "ImageError",
    "ImageService",
    "InvalidReference",
    "NoSuchImage",
    "Reference",
    "parse_reference",
]
