"""Dockyard: a container engine that speaks the Docker Engine API."""

__version__ = "0.1.0"

# The Engine API version we speak, and the oldest one we still accept.
API_VERSION = "1.41"
MIN_API_VERSION = "1.24"
