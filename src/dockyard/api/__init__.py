"""The Docker Engine API server: routes by resource over the engine."""

from .server import build_app

__all__ = ["build_app"]
