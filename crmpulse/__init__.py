"""crmpulse: find a CRM's weak points before its customers do.

The core package holds what every component shares: the config model
(:func:`load_config`), CRM operations as data (:func:`load_profile`), the clients that
run them (:class:`Client`, :class:`AsyncClient`), the exception tree, the CLI, and the
sandbox CRM (``crmpulse.sandbox``, which imports nothing from the rest).
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._exceptions import (
    AuthError,
    ConfigError,
    CrmpulseError,
    OperationError,
    OriginError,
    Problem,
    TransportError,
)
from .client import AsyncClient, Client
from .config import Config, LoadedConfig, load_config
from .profile import Profile, load_profile

__all__ = [
    "AsyncClient",
    "AuthError",
    "Client",
    "Config",
    "ConfigError",
    "CrmpulseError",
    "LoadedConfig",
    "OperationError",
    "OriginError",
    "Problem",
    "Profile",
    "TransportError",
    "__version__",
    "load_config",
    "load_profile",
]
