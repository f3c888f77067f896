"""Exception types a module sees when it calls a command.

Each type says what the caller should do next (``retryable``): a timeout or an unavailable peer may
succeed later; a schema violation or a handler fault will not until something changes.
The ``wire_name`` is the EVerest error type carried in ``__everest__error_type`` on the bus.
"""

from __future__ import annotations


class CommandError(Exception):
    """A command call did not produce a result."""

    wire_name = "HandlerException"
    retryable = False

    def __init__(self, message: str, *, target: str = "") -> None:
        super().__init__(f"{target}: {message}" if target else message)
        self.message = message
        self.target = target

    @classmethod
    def from_wire(cls, error_type: str, message: str, target: str = "") -> CommandError:
        for sub in _all_subclasses(CommandError):
            if sub.wire_name == error_type:
                return sub(message, target=target)
        return HandlerError(f"{error_type}: {message}", target=target)


class CommandTimeout(CommandError):
    """No reply within the timeout. Retry later; the callee may still be busy or gone."""

    wire_name = "CmdTimeout"
    retryable = True


class HandlerError(CommandError):
    """The callee's handler raised. Do not retry blindly: the callee rejected this call."""

    wire_name = "HandlerException"


class SchemaValidationError(CommandError):
    """Arguments or result did not match the interface schema. A programming or data error."""

    wire_name = "SchemaValidationError"


class MessageParsingError(CommandError):
    """The request could not be decoded by the callee."""

    wire_name = "MessageParsingError"


class NotReadyError(CommandError):
    """The callee is not (or no longer) ready, e.g. restarting. Retry later."""

    wire_name = "NotReady"
    retryable = True


class ShutdownError(CommandError):
    """The system is shutting down; the call was abandoned. Do not retry."""

    wire_name = "Shutdown"


class PeerUnavailable(CommandError):
    """The callee is known to be down (crashed, restarting, link lost). Retry later; fails fast."""

    wire_name = "PeerUnavailable"
    retryable = True


class UnknownCommandError(CommandError):
    """The interface has no such command."""

    wire_name = "UnknownCommand"


class ModuleStartupError(Exception):
    """A module failed to initialise or never reported ready; the system does not start."""


def _all_subclasses(cls: type[CommandError]) -> list[type[CommandError]]:
    out: list[type[CommandError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out
