"""Syndicate configuration: typed settings from the environment and the validated YAML config.

This package is the only place that reads ``os.environ`` (see :mod:`config.settings`) and the YAML
file (see :mod:`config.model`). Everything else receives the resulting objects.
"""

from config.model import (
    Config,
    ConfigError,
    EndpointConfig,
    FeedConfig,
    FetchPolicy,
    MissingSecret,
    SourceConfig,
    load_config,
)
from config.settings import Settings, get_settings

__all__ = [
    "Config",
    "ConfigError",
    "EndpointConfig",
    "FeedConfig",
    "FetchPolicy",
    "MissingSecret",
    "Settings",
    "SourceConfig",
    "get_settings",
    "load_config",
]
