"""The engine: daemon configuration, start-up, the wiring of services, and events."""

from .config import ConfigError, DaemonConfig, build_config, read_config_file
from .daemon import Daemon
from .events import Event, EventBus

__all__ = ["ConfigError", "Daemon", "DaemonConfig", "Event", "EventBus", "build_config", "read_config_file"]
