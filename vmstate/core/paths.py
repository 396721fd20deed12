"""Where a clone of the repository keeps what vmstate reads besides its code
(the scenario library, the hostile corpus, the reference's build script),
and where vmstate keeps what it makes for later (the reference build, the
fuzzer's example database): a cache folder, never the current one."""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
SCENARIOS = FIXTURES / "scenarios"
BUILD_ORACLE = REPO / "tools" / "build-oracle"


def cache() -> Path:
    """``VMSTATE_CACHE``, or ``$XDG_CACHE_HOME/vmstate`` (``~/.cache/vmstate``)."""
    given = os.environ.get("VMSTATE_CACHE")
    if given:
        return Path(given)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vmstate"
