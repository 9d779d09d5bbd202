"""The hub's exceptions.

``InvalidEvent`` is the one exception for bad input: the business core raises it with a reason, and
only the agent boundary catches it and hands the event to the dead-letter topic. Everything else is
an operational error and is not dead-lettered.
"""

from __future__ import annotations


class InvalidEvent(Exception):
    """An input event the hub cannot turn into canonical records.

    ``reason`` is short and stable (it becomes a DLQ header and a metric label); ``detail`` says
    what exactly was wrong with this event.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class DeadLetterFlood(RuntimeError):
    """Too many events in a row (or too large a share) were invalid: stop instead of swallowing."""


class StackError(RuntimeError):
    """A component of the local stack failed; the message says which, where its log is, what to do."""


class RegistryError(ValueError):
    """The topic registry or a connector definition is malformed."""
