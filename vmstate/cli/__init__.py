"""The ``vmstate`` command line: one module per group of commands, each
adding its commands to the one group (``vmstate.cli.group.main``)."""
from vmstate.cli import campaigns, checks, reference, schema, streams, traces  # noqa: F401 (each adds its commands)
from vmstate.cli.group import main

__all__ = ["main", "command_line"]


def command_line() -> None:
    """The ``vmstate`` executable: :data:`main`, ending quietly (as ``cat``
    does) when the reader of its output goes away (``vmstate ... | head``)."""
    import signal

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main(prog_name="vmstate")
