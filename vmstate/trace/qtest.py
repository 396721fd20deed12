"""Traces in QEMU's qtest text protocol, and a runner that answers them as
QEMU 7.2 answers a qtest client.

A trace is the same text one would send to ``-qtest``: one command a line.
We add ``#`` comments, blank lines (both skipped, and stripped before a trace
goes to the reference) and ``migrate`` lines for the migration checker.
QEMU aborts on a malformed argument; we refuse the whole trace up front with
the line number instead, so nothing runs on a trace that cannot run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from vmstate.core.errors import TraceError, VmstateError
from vmstate.trace.numbers import parse_number
from vmstate.trace.points import point_of, through_the_bytes

PORT_WIDTHS = {"outb": 1, "outw": 2, "outl": 4, "inb": 1, "inw": 2, "inl": 4}
MEM_WIDTHS = {"writeb": 1, "writew": 2, "writel": 4, "writeq": 8,
              "readb": 1, "readw": 2, "readl": 4, "readq": 8}
U64 = (1 << 64) - 1


@dataclass(frozen=True)
class Command:
    line: int
    text: str
    name: str
    args: tuple

    def __str__(self) -> str:
        return self.text


def _number(word: str, what: str, lo: int, hi: int, signed: bool = False) -> int:
    try:
        value = parse_number(word, signed)
    except ValueError:
        raise TraceError(f"{what} {word!r} is not a number") from None
    if not lo <= value <= hi:
        raise TraceError(f"{what} {word} is out of range ({lo:#x}..{hi:#x})")
    return value


def _arity(words: list[str], n: int, usage: str) -> None:
    if len(words) - 1 != n:
        raise TraceError(f"expected {usage}")


def parse_line(line: int, text: str) -> Command | None:
    """One line of a trace (without its newline), or None for a blank line
    or a comment.  Everything else is a command, as QEMU reads it: a
    carriage return or form feed is part of the last word."""
    stripped = text
    if not stripped.strip(" \t") or stripped.lstrip(" \t").startswith("#"):
        return None
    try:
        if "\0" in stripped:
            raise TraceError("a NUL byte: QEMU's qtest stops answering for good at one")
        words = stripped.split(" ")
        name = words[0]
        if "" in words:
            raise TraceError("words must be separated by single spaces (qtest splits on each)")
        if name in PORT_WIDTHS and name.startswith("out"):
            _arity(words, 2, f"{name} PORT VALUE")
            args = (_number(words[1], "port", 0, 0xFFFF), _number(words[2], "value", 0, U64))
        elif name in PORT_WIDTHS:
            _arity(words, 1, f"{name} PORT")
            args = (_number(words[1], "port", 0, 0xFFFF),)
        elif name in MEM_WIDTHS and name.startswith("write"):
            _arity(words, 2, f"{name} ADDRESS VALUE")
            args = (_number(words[1], "address", 0, U64), _number(words[2], "value", 0, U64))
        elif name in MEM_WIDTHS:
            _arity(words, 1, f"{name} ADDRESS")
            args = (_number(words[1], "address", 0, U64),)
        elif name == "clock_step":
            if len(words) > 2:
                raise TraceError("expected clock_step [NS]")
            args = (_number(words[1], "nanoseconds", -(1 << 63), (1 << 63) - 1, True),) if len(words) == 2 else (None,)
        elif name == "clock_set":
            _arity(words, 1, "clock_set NS")
            args = (_number(words[1], "nanoseconds", -(1 << 63), (1 << 63) - 1, True),)
        elif name == "irq_intercept_in":
            _arity(words, 1, "irq_intercept_in PATH")
            args = (words[1],)
        elif name == "endianness":
            _arity(words, 0, "endianness")
            args = ()
        elif name == "migrate":
            args = tuple(_migrate_option(w) for w in words[1:])
            point_of(Command(line, stripped, name, args))   # a bad option stops the trace before it runs
        elif name in ("irq_intercept_out", "set_irq_in", "read", "write", "b64read",
                      "b64write", "memset", "module_load", "rtas"):
            raise TraceError(f"'{name}' is a qtest command vmstate does not model")
        else:
            args = ()
    except TraceError as err:
        raise TraceError(err.message, line, stripped) from None
    return Command(line, stripped, name, args)


def _migrate_option(word: str) -> tuple[str, str]:
    key, sep, value = word.partition("=")
    if not sep or not key or not value:
        raise TraceError(f"migrate options are KEY=VALUE, not {word!r}")
    return key, value


def lines(text: str) -> Iterator[tuple[int, str]]:
    """A trace's lines with their numbers, one at a time (a long trace is
    never held twice).  Lines end at ``\n`` only, as QEMU's qtest splits
    them."""
    start, number = 0, 1
    while True:
        end = text.find("\n", start)
        if end < 0:
            yield number, text[start:]
            return
        yield number, text[start:end]
        start, number = end + 1, number + 1


def iter_commands(text: str) -> Iterator[Command]:
    """A trace's commands, one at a time."""
    for number, line in lines(text):
        command = parse_line(number, line)
        if command is not None:
            yield command


def parse_trace(text: str) -> list[Command]:
    return list(iter_commands(text))


def decode_trace(data: bytes, where: str = "the trace") -> str:
    """A trace's text: UTF-8, or a TraceError naming the line and column of
    the first byte that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise TraceError(f"{where} is not UTF-8 text: byte {data[err.start]:#04x} at column {column}",
                         line) from None


Migrate = Callable[[object, Command], object]


class Runner:
    """Executes commands on a machine and yields QEMU's reply lines.

    ``migrate`` decides what a ``migrate`` line does with the machine; by
    default it migrates through the bytes.
    """

    def __init__(self, machine, migrate: Migrate = through_the_bytes):
        self.machine = machine
        self.migrate = migrate

    @property
    def session(self):
        return self.machine.session

    def execute(self, command: Command) -> list[str]:
        machine = self.machine
        session = machine.session
        session.op = command.line
        try:
            reply = self._reply(command)
            out = self._irq_lines(session)
            out.append(reply)
            # A timer armed for a deadline already past runs in QEMU's main loop
            # right after the reply is sent, before the next command is read.
            self.machine.clock.run_due()
        except VmstateError as err:
            raise err.located(command.line) from None
        out.extend(self._irq_lines(session))
        return out

    @staticmethod
    def _irq_lines(session) -> list[str]:
        """The IRQ lines QEMU sends for the edges reported since the last call."""
        lines = [f"IRQ {'raise' if e.level else 'lower'} {e.line}" for e in session.edges]
        session.edges.clear()
        return lines

    def _reply(self, command: Command) -> str:
        m = self.machine
        name, args = command.name, command.args
        if name in PORT_WIDTHS:
            width = PORT_WIDTHS[name]
            if name.startswith("out"):
                m.io_write(args[0], width, args[1] & ((1 << (8 * width)) - 1))
                return "OK"
            return f"OK 0x{m.io_read(args[0], width):04x}"
        if name in MEM_WIDTHS:
            width = MEM_WIDTHS[name]
            if name.startswith("write"):
                m.mem_write(args[0], width, args[1] & ((1 << (8 * width)) - 1))
                return "OK"
            return f"OK 0x{m.mem_read(args[0], width):016x}"
        if name == "clock_step":
            return f"OK {m.clock_step(args[0])}"
        if name == "clock_set":
            return f"OK {m.clock_set(args[0])}"
        if name == "irq_intercept_in":
            return m.intercept(args[0])
        if name == "endianness":
            return "OK little"
        if name == "migrate":
            session = m.session
            self.machine = self.migrate(m, command)
            self.machine.session = session
            return "OK"
        return f"FAIL Unknown command '{name}'"

    def run(self, commands: Iterable[Command]) -> Iterator[str]:
        for command in commands:
            yield from self.execute(command)
