"""vmstate: serialize, migrate and check the live state of emulated x86 timer
devices.

The code is layered; a module imports only from layers below its own, or
from its own package (``tests/test_layers.py`` holds every import to this):

====  =====================================  ===================================================
rank  packages                               what they hold
====  =====================================  ===================================================
0     ``vmstate.core``                       clocks, address spaces, interrupt wires, errors,
                                             observations, state objects, the Device protocol
1     ``vmstate.wire``, ``devices``          QEMU's wire format (tables, generated codec,
                                             sections, streams, snapshots); the device models
2     ``schemas``                            each device's format, as a table
3     ``vmstate.machine``                    the pc machine, device names, migration
4     ``vmstate.trace``                      qtest traces, trace loading, the QEMU reference
5     ``vmstate.present``                    how results are shown
6     ``vmstate.check``                      the checker, known divergences and limits, the matrix
7     ``vmstate.strategies``                 hypothesis strategies for scenarios
8     ``vmstate.fuzz``                       fuzz campaigns, hostile streams, the pytest plugin
9     ``vmstate.demo``                       the main job on built-in defaults
10    ``vmstate.cli``                        the command line
====  =====================================  ===================================================

So the core imports neither ``devices`` nor ``schemas``; devices build on
the core and not on the wire format; schemas describe the devices' state;
the top ties them together.  Importing this package imports nothing else.
"""

__version__ = "0.2.0"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("vmstate.core",),
    ("vmstate.wire", "devices"),
    ("schemas",),
    ("vmstate.machine",),
    ("vmstate.trace",),
    ("vmstate.present",),
    ("vmstate.check",),
    ("vmstate.strategies",),
    ("vmstate.fuzz",),
    ("vmstate.demo",),
    ("vmstate.cli",),
    ("vmstate.__main__",),
)
