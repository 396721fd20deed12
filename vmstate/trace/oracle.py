"""The QEMU 7.2 reference: building it, and running a trace on it.

Debian's binary QEMU has no qtest accelerator, so the reference is built from
Debian's source package by ``tools/build-oracle`` and cached outside the
repository.  A trace runs on it over the qtest socket exactly as on
``vmstate run``; a ``migrate`` line migrates the reference for real (QMP
``migrate`` to a file, a fresh QEMU loading it) and puts the destination's
qtest clock back where the source's was, since that clock is not part of the
stream.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from vmstate.core.paths import BUILD_ORACLE, cache
from vmstate.core.errors import OracleError, OracleUnavailable
from vmstate.machine.pc import parse_rtc_base
from vmstate.trace.qtest import Command, Runner

BUILD_SCRIPT = BUILD_ORACLE
FIRMWARE = ("/usr/share/qemu", "/usr/share/seabios")
HOW_TO_BUILD = "build it with `vmstate oracle build` (about 5 minutes)"
TIMEOUT = 30.0


def cache_dir() -> Path:
    return cache() / "qemu-7.2"


def binary() -> Path:
    """The reference binary, or OracleUnavailable saying how to build it.
    ``VMSTATE_QEMU`` names another qtest-capable QEMU 7.2."""
    path = Path(os.environ.get("VMSTATE_QEMU") or cache_dir() / "qemu-system-x86_64")
    if not os.access(path, os.X_OK):
        raise OracleUnavailable(f"the QEMU 7.2 reference is not built at {path}: {HOW_TO_BUILD}")
    return path


def build(yes: bool = False) -> Path:
    """Run tools/build-oracle (which asks before it installs anything, unless ``yes``)."""
    if not BUILD_SCRIPT.exists():
        raise OracleError(f"{BUILD_SCRIPT} is missing: run this from a clone of the repository")
    done = subprocess.run(["bash", str(BUILD_SCRIPT)] + (["--yes"] if yes else []), stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise OracleError(f"building the reference failed (exit {done.returncode}); its log is above")
    return Path(done.stdout.strip().splitlines()[-1])


def first_difference(ours: list[str], theirs: list[str]) -> int | None:
    """Index of the first output line where two runs part, or None."""
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            return i
    if len(ours) != len(theirs):
        return min(len(ours), len(theirs))
    return None


def qemu_rtc_base(text: str) -> str:
    return datetime.fromtimestamp(parse_rtc_base(text), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


class _Lines:
    """Line reader over a socket, with a deadline per line."""

    def __init__(self, sock: socket.socket, what: str):
        self.sock = sock
        self.what = what
        self.buf = b""
        sock.settimeout(TIMEOUT)

    def readline(self) -> str:
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise OracleError(f"the reference's {self.what} did not answer within {TIMEOUT:.0f} s") from None
            if not chunk:
                raise OracleError(f"the reference closed its {self.what} connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode() + b"\n")


class _Qemu:
    """One QEMU process with a qtest and a QMP connection."""

    def __init__(self, workdir: Path, rtc_base: str, rtc_clock: str, incoming: Path | None = None):
        self.workdir = workdir
        qpath, mpath = workdir / "qtest.sock", workdir / "qmp.sock"
        for path in (qpath, mpath):
            path.unlink(missing_ok=True)
        qlisten = socket.socket(socket.AF_UNIX)
        qlisten.bind(str(qpath))
        qlisten.listen(1)
        mlisten = socket.socket(socket.AF_UNIX)
        mlisten.bind(str(mpath))
        mlisten.listen(1)
        args = [str(binary()), "-machine", "pc", "-accel", "qtest", "-nodefaults",
                "-display", "none", "-m", "8", "-rtc", f"base={qemu_rtc_base(rtc_base)},clock={rtc_clock}",
                "-qtest", f"unix:{qpath}", "-qtest-log", "/dev/null",
                "-chardev", f"socket,path={mpath},id=char0", "-mon", "chardev=char0,mode=control"]
        for path in FIRMWARE:
            args += ["-L", path]
        if incoming is not None:
            args += ["-incoming", f"exec:cat {incoming}"]
        self.log = open(workdir / "qemu.log", "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        try:
            qlisten.settimeout(TIMEOUT)
            mlisten.settimeout(TIMEOUT)
            self.qtest = _Lines(qlisten.accept()[0], "qtest")
            self.qmp = _Lines(mlisten.accept()[0], "QMP")
        except socket.timeout:
            self.close()
            raise OracleError(f"the reference did not start; see {workdir / 'qemu.log'}") from None
        finally:
            qlisten.close()
            mlisten.close()
        self.qmp.readline()
        self.execute("qmp_capabilities")

    def execute(self, command: str, **arguments) -> dict:
        request = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self.qmp.send(json.dumps(request))
        while True:
            reply = json.loads(self.qmp.readline())
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise OracleError(f"QMP {command}: {reply['error'].get('desc')}")

    def command(self, text: str) -> list[str]:
        """Send one qtest command; its IRQ lines and reply."""
        self.qtest.send(text)
        lines = []
        while True:
            line = self.qtest.readline()
            lines.append(line)
            if not line.startswith("IRQ "):
                return lines

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()


def _settle(qemu: _Qemu, line: int) -> None:
    """Wait until a QEMU started with ``-incoming`` has loaded its stream."""
    for _ in range(int(TIMEOUT * 20)):
        if qemu.execute("query-status").get("status") != "inmigrate":
            return
        time.sleep(0.05)
    raise OracleError(f"line {line}: the reference never finished loading the stream")


class _QemuSide:
    """QEMU 7.2 under qtest as one side of a migration."""

    kind = "qemu"

    def __init__(self, options: dict, workdir: Path, incoming: Path | None = None):
        self.options, self.workdir = options, workdir
        self.qemu = _Qemu(workdir, options["rtc_base"], options["rtc_clock"], incoming)

    def command(self, command: Command) -> list[str]:
        return self.qemu.command(command.text)

    def now(self) -> int:
        return int(self.qemu.command("clock_step 0")[-1].split()[1])

    def stream(self, path: Path, line: int) -> None:
        self.qemu.execute("migrate", uri=f"exec:cat > {path}")
        for _ in range(int(TIMEOUT * 20)):
            status = self.qemu.execute("query-migrate").get("status")
            if status == "completed":
                return
            if status in ("failed", "cancelled"):
                raise OracleError(f"line {line}: the reference's migration {status}")
            time.sleep(0.05)
        raise OracleError(f"line {line}: the reference's migration did not complete")

    @classmethod
    def arrive(cls, options: dict, workdir: Path, path: Path, now: int, line: int, intercepting,
               levels: dict[int, int]) -> "_QemuSide":
        """A fresh QEMU loading ``path`` as the harness makes one: it loads
        at clock 0, is ``clock_set`` to the source's time (the qtest clock
        is not in the stream), and intercepts again; a line the client last
        saw high is set high through the intercepted input, so that the new
        session reports what the guest would see (its own "IRQ raise" is
        swallowed)."""
        side = cls(options, workdir, incoming=path)
        try:
            _settle(side.qemu, line)
            side.qemu.execute("cont")
            side.qemu.command(f"clock_set {now}")
            if intercepting:
                side.qemu.command(f"irq_intercept_in {intercepting}")
                for gsi, level in sorted(levels.items()):
                    if level:
                        side.qemu.command(f"set_irq_in {intercepting} unnamed-gpio-in {gsi} 1")
        except BaseException:
            side.close()
            raise
        return side

    def close(self) -> None:
        self.qemu.close()


class _OurSide:
    """vmstate's pc machine as one side of a migration."""

    kind = "vmstate"

    def __init__(self, machine):
        self.runner = Runner(machine)

    def command(self, command: Command) -> list[str]:
        return self.runner.execute(command)

    def now(self) -> int:
        return self.runner.machine.clock.now

    def stream(self, path: Path, line: int) -> None:
        from vmstate.machine import migration

        path.write_bytes(migration.save(self.runner.machine))

    @classmethod
    def arrive(cls, options: dict, workdir: Path, path: Path, now: int, line: int, intercepting,
               levels: dict[int, int]) -> "_OurSide":
        """The stream loaded as the harness loads one into QEMU (at clock 0,
        then ``clock_set`` to the source's time with interrupts not
        intercepted), whoever wrote it."""
        from vmstate.machine import qemu_streams
        from vmstate.machine.pc import IOAPIC_PINS, Session

        with open(path, "rb") as handle:
            real = qemu_streams.read(handle, clock=now, **options)
        machine = qemu_streams.restore_as_the_harness_does(real, now, **options)
        session = Session(intercepting=bool(intercepting))
        session.irq_levels = [levels.get(gsi, 0) for gsi in range(IOAPIC_PINS)]
        machine.session = session
        return cls(machine)

    def close(self) -> None:
        pass


SIDES = {"qemu": _QemuSide, "vmstate": _OurSide}


class Reference:
    """Runs traces on QEMU 7.2.  ``keep_streams`` keeps each migration's
    stream file there, named after the trace line that made it."""

    def __init__(self, rtc_base: str, rtc_clock: str = "vm", keep_streams: Path | None = None):
        binary()
        self.rtc_base = rtc_base
        self.rtc_clock = rtc_clock
        self.keep_streams = keep_streams

    def run(self, commands: list[Command]) -> list[str]:
        return self.between(commands, "qemu", "qemu")

    def between(self, commands: list[Command], first: str, second: str,
                lines_of: list[int] | None = None) -> list[str]:
        """The trace started on ``first`` ("qemu" or "vmstate"), each
        ``migrate`` line moving the machine through the real bytes to the
        other of ``first`` and ``second`` (back and forth), as the harness
        migrates QEMU to QEMU.  ``lines_of`` is given the trace line of
        every output line."""
        from vmstate.machine.pc import PcMachine

        options = {"rtc_base": self.rtc_base, "rtc_clock": self.rtc_clock}
        workdir = Path(tempfile.mkdtemp(prefix="vmstate-oracle-"))
        side = _QemuSide(options, workdir) if first == "qemu" else _OurSide(PcMachine(**options))
        out: list[str] = []
        intercepting = False
        levels: dict[int, int] = {}
        try:
            for command in commands:
                if command.name == "migrate":
                    now = side.now()
                    stream = workdir / f"stream-line{command.line}.bin"
                    side.stream(stream, command.line)
                    side.close()
                    if self.keep_streams is not None:
                        self.keep_streams.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(stream, self.keep_streams / stream.name)
                    target = second if side.kind == first and first != second else first
                    side = SIDES[target].arrive(options, workdir, stream, now, command.line, intercepting, levels)
                    out.append("OK")
                    if lines_of is not None:
                        lines_of.append(command.line)
                    continue
                lines = side.command(command)
                if command.name == "irq_intercept_in" and lines[-1] == "OK":
                    intercepting = command.args[0]
                for line in lines:
                    if line.startswith("IRQ "):
                        _, change, number = line.split()
                        levels[int(number)] = 1 if change == "raise" else 0
                out.extend(lines)
                if lines_of is not None:
                    lines_of.extend([command.line] * len(lines))
        finally:
            side.close()
            shutil.rmtree(workdir, ignore_errors=True)
        return out
