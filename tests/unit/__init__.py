"""Unit tests (a package, so module names may repeat those in tests/integration)."""
