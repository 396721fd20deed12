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


class OracleError(VmstateError):
    """The QEMU reference could not be built or did not answer as expected."""


class OracleUnavailable(OracleError):
    """The reference binary is not built; the message says how to build it."""
