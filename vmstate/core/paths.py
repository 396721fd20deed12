"""Where a clone of the repository keeps what vmstate reads besides its code:
the scenario library, the hostile corpus, the reference's build script."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
SCENARIOS = FIXTURES / "scenarios"
BUILD_ORACLE = REPO / "tools" / "build-oracle"
