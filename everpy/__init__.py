"""everpy: a plugin-based firmware framework for EV charger controller boards."""

from everpy.core.exceptions import (
    CommandError,
    CommandTimeout,
    HandlerError,
    MessageParsingError,
    NotReadyError,
    PeerUnavailable,
    SchemaValidationError,
    ShutdownError,
    UnknownCommandError,
)
from everpy.core.module import Module, Remote, command

__version__ = "0.1.0"

__all__ = [
    "CommandError",
    "CommandTimeout",
    "HandlerError",
    "MessageParsingError",
    "Module",
    "NotReadyError",
    "PeerUnavailable",
    "Remote",
    "SchemaValidationError",
    "ShutdownError",
    "UnknownCommandError",
    "command",
]
