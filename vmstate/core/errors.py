"""One hierarchy for everything vmstate refuses.

Callers catch :class:`VmstateError` and nothing else: a malformed trace, a
corrupt stream or a bad argument must never surface as a bare traceback.  Each
error carries where it happened (a trace line, or a byte offset and a field
path) so that a user can go straight to the culprit.
"""
from __future__ import annotations


class VmstateError(Exception):
    """Base of every error vmstate raises on purpose.  ``line`` and
    ``source`` say where in a trace (and in which file) it happened, when it
    happened while running one: a stream refused at a ``migrate`` line, an
    event budget spent by a ``clock_step``."""

    exit_code = 2
    line: int | None = None
    source: str | None = None

    def located(self, line: int | None = None, source: str | None = None) -> "VmstateError":
        """The error, placed at ``line`` of ``source`` unless it already is."""
        if self.line is None:
            self.line = line
        if self.source is None:
            self.source = source
        return self

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source is not None else ""
        if self.line is not None:
            where += f"line {self.line}: "
        return where + super().__str__()

    def to_json(self) -> dict:
        out = {"error": type(self).__name__, "message": str(self)}
        if self.line is not None:
            out["line"] = self.line
        if self.source is not None:
            out["source"] = self.source
        return out


class UsageError(VmstateError):
    """An argument or option that cannot be honoured."""


class TraceError(VmstateError):
    """A trace line that cannot be parsed or executed."""

    def __init__(self, message: str, line: int | None = None, text: str | None = None):
        self.message = message
        self.line = line
        self.text = text
        super().__init__(message)

    def __str__(self) -> str:
        shown = f" (in {self.text!r})" if self.text is not None else ""
        return super().__str__() + shown

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

    def shifted(self, by: int) -> "StreamError":
        """The same error with its offset ``by`` bytes on: a stream's error
        as an offset in the file that holds the stream."""
        moved = type(self)(self.message, None if self.offset is None else self.offset + by, self.path)
        return moved.located(self.line, self.source)

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
