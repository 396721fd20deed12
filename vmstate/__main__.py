"""``python -m vmstate``: the same command line as ``vmstate``."""
from vmstate.cli import command_line

command_line()
