"""Building images from a Dockerfile, as Docker's classic builder does (`docker build`, `POST /build`).

The public surface is `Builder` (with `BuildOptions`, `BuildError`) and `BuildContext`; they are loaded
on first use so that the CLI, which imports `build.dockerignore` to filter contexts, stays light.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not from typing: the CLI imports this package (for .dockerignore) and avoids it

__all__ = ["BuildContext", "BuildError", "BuildOptions", "Builder", "ContextError"]

if TYPE_CHECKING:
    from typing import Any

    from .builder import Builder, BuildError, BuildOptions
    from .context import BuildContext, ContextError


def __getattr__(name: str) -> Any:  # noqa: F821 (a string annotation: `from __future__`)
    if name in ("Builder", "BuildOptions", "BuildError"):
        from . import builder

        return getattr(builder, name)
    if name in ("BuildContext", "ContextError"):
        from . import context

        return getattr(context, name)
    raise AttributeError(name)
