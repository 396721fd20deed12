"""One hierarchy for everything vmstate refuses.

Callers catch :class:`VmstateError` and nothing else: a malformed trace, a
corrupt stream or a bad argument must never surface as a bare traceback.  Each
error carries where it happened (a trace line, or a byte offset and a field
path) so that a user can go straight to the culprit.
"""
from __future__ import annotations


class VmstateError(Exception):
    """Base of every error vmstate raises on purpose."""

    exit_code = 2

    def to_json(self) -> dict:
        return {"error": type(self).__name__, "message": str(self)}


class UsageError(VmstateError):
    """An argument or option that cannot be honoured."""


class TraceError(VmstateError):
    """A trace line that cannot be parsed or executed."""

    def __init__(self, message: str, line: int | None = None, text: str | None = None):
        self.message = message
        self.line = line
        self.text = text
        where = f"line {line}: " if line is not None else ""
        shown = f" (in {text!r})" if text is not None else ""
        super().__init__(f"{where}{message}{shown}")

    def to_json(self) -> dict:
        return {**super().to_json(), "line": self.line, "text": self.text}


class EventBudgetExceeded(VmstateError):
    """A command caused more timer events than its budget allows; ``timer``
    names the timer that went over."""

    def __init__(self, message: str, timer: str = ""):
        self.message = message
        self.timer = timer
        super().__init__(message)

    def to_json(self) -> dict:
        return {**super().to_json(), "timer": self.timer}


class OracleError(VmstateError):
    """The QEMU reference could not be built or did not answer as expected."""


class OracleUnavailable(OracleError):
    """The reference binary is not built; the message says how to build it."""


class StreamError(VmstateError):
    """A migration stream that cannot be loaded.  ``offset`` is the byte
    offset in the stream, ``path`` the field path (``hpet.timer[2].period``)
    where known.  Raised before anything is applied to the destination."""

    def __init__(self, message: str, offset: int | None = None, path: str | None = None):
        self.message = message
        self.offset = offset
        self.path = path
        where = []
        if offset is not None:
            where.append(f"offset {offset:#x}")
        if path:
            where.append(path)
        super().__init__(f"{' '.join(where)}: {message}" if where else message)

    def to_json(self) -> dict:
        return {**super().to_json(), "offset": self.offset, "path": self.path}


class TruncatedStream(StreamError):
    """The stream ends in the middle of something."""


class TrailingData(StreamError):
    """Bytes follow where the stream should have ended."""


class NotAStream(StreamError):
    """The magic number or the stream format version is wrong."""


class MalformedStream(StreamError):
    """A section marker, header, footer or description that is not what the
    format requires."""


class UnknownSection(StreamError):
    """A section this machine has no device for."""


class UnknownSubsection(StreamError):
    """A subsection of a known section that this version does not know."""


class VersionTooNew(StreamError):
    """A section version above what this code can load."""


class VersionTooOld(StreamError):
    """A section version below the description's minimum."""


class InvalidField(StreamError):
    """A value that the device could never hold, or fields that contradict
    each other."""
