"""The pytest plugin, as a user's suite sees it: installed through the
pytest11 entry point, its fixture runs the migration property on our
devices and on a device of the user's own."""
pytest_plugins = ["pytester"]

USER_TESTS = '''
from dataclasses import dataclass

from hypothesis import strategies as st

from vmstate.wire.kinds import UINT8
from vmstate.wire.table import Description, Field


@dataclass
class LatchState:
    value: int = 0
    pending: int = 0


class Latch:
    """A register whose write is applied on the next read (pending)."""

    def __init__(self, clock, forget_pending=False):
        self.clock = clock
        self.value = 0
        self.pending = 0
        self.forget_pending = forget_pending

    def write(self, value):
        self.pending = value | 0x100

    def read(self):
        if self.pending:
            self.value, self.pending = self.pending & 0xFF, 0
        return self.value

    def get_state(self):
        return LatchState(self.value, 0 if self.forget_pending else self.pending)

    def set_state(self, state):
        self.value, self.pending = state.value, state.pending


def ops():
    def write(v):
        def op(device):
            device.write(v)
        op.__name__ = f"write({v:#x})"
        return op

    def read(device):
        return device.read()

    return st.one_of(st.integers(0, 0xFF).map(write), st.just(read))


def test_our_pit_migrates(migration_equivalence):
    migration_equivalence.pc(devices=["i8254"], max_examples=10)


def test_a_device_that_saves_everything(migration_equivalence):
    from vmstate.wire.kinds import UINT16
    desc = Description("latch", version=1, minimum=1, fields=[Field("value", UINT8), Field("pending", UINT16)])
    migration_equivalence.device(Latch, desc, ops())


def test_a_device_that_forgets_its_pending_write(migration_equivalence):
    from vmstate.wire.kinds import UINT16
    desc = Description("latch", version=1, minimum=1, fields=[Field("value", UINT8), Field("pending", UINT16)])
    migration_equivalence.device(lambda clock: Latch(clock, forget_pending=True), desc, ops())
'''


def test_the_plugin_is_registered_and_its_fixture_finds_a_forgotten_field(pytester):
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--vmstate-examples", "60")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_a_device_that_forgets_its_pending_write*",
                                 "*the guest can tell it was migrated*"])


def test_the_fixture_reports_a_broken_pc_schema_with_its_trace(pytester):
    pytester.makepyfile(test_broken='''
import sys
sys.path.insert(0, %r)
from planted import PLANTED


def test_broken(migration_equivalence):
    migration_equivalence.pc(devices=["mc146818rtc"], max_examples=300,
                             sections=PLANTED["rtc-cmos-index-dropped"].sections)
''' % str(__import__("pathlib").Path(__file__).parent))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the guest can tell it was migrated (diverges*", "*migrate*"])
