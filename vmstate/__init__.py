"""vmstate: serialize, migrate and check the live state of emulated x86 timer
devices.

The package is layered: the core (``clock``, ``bus``, ``irq``, ``errors``,
``observe``) imports neither ``devices`` nor ``schemas``; ``devices`` build on
the core; the top (``machine``, ``qtest``, ``cli``, ``oracle``) ties them
together.  Importing this package imports nothing else.
"""

__version__ = "0.1.0"
