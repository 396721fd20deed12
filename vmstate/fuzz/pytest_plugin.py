"""A pytest plugin: the migration-equivalence property, for your own tests.

Installing vmstate registers this plugin (entry point ``pytest11``), so any
test suite gets the ``migration_equivalence`` fixture.  It runs the property
"a guest cannot tell it was migrated" with hypothesis, either on vmstate's
pc machine::

    def test_the_pit_migrates(migration_equivalence):
        migration_equivalence.pc(devices=["i8254"])

or on a device model of your own that implements vmstate's state interface
-- ``get_state()`` returning a state object, ``set_state(state)`` loading
one, and a :class:`vmstate.wire.table.Description` of its wire format::

    def test_my_device_migrates(migration_equivalence):
        migration_equivalence.device(MyDevice, MY_DESCRIPTION, my_operations)

``MyDevice(clock)`` is built on a :class:`vmstate.core.clock.VirtualClock`;
``my_operations`` is a hypothesis strategy drawing guest operations, each a
callable ``op(device)`` whose return value is what the guest observes.  The
scenario interleaves them with time steps and migrations through the bytes
of a real stream at each version of the description, and runs it straight
and migrated: every observation (with its virtual time) must agree.  A
failure is shrunk and reported as the list of steps that shows it.

``--vmstate-examples N`` sets how many scenarios each call tries (default
50), so CI can keep it small and a nightly run large.

pytest loads this plugin into every test session of an environment with
vmstate installed, so it imports vmstate's machinery and hypothesis only
when a test uses the fixture.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import pytest

DEFAULT_EXAMPLES = 50


def pytest_addoption(parser) -> None:
    group = parser.getgroup("vmstate")
    group.addoption("--vmstate-examples", type=int, default=None, metavar="N",
                    help=f"scenarios per migration_equivalence call (default {DEFAULT_EXAMPLES})")


@dataclass(frozen=True)
class _Step:
    kind: str  # "op", "step" or "migrate"
    value: Any

    def __repr__(self) -> str:
        if self.kind == "op":
            return f"op {getattr(self.value, '__name__', None) or self.value!r}"
        return f"{self.kind} {self.value}"


class MigrationEquivalence:
    """What the ``migration_equivalence`` fixture gives a test."""

    def __init__(self, max_examples: int = DEFAULT_EXAMPLES):
        self.max_examples = max_examples

    def _settings(self, max_examples: int | None):
        from hypothesis import HealthCheck, settings

        return settings(max_examples=max_examples or self.max_examples, deadline=None, database=None,
                        suppress_health_check=list(HealthCheck), print_blob=False)

    def pc(self, devices: Iterable[str] = ("i8254", "hpet", "mc146818rtc", "piix4_pm"), operations=None,
           sections=None, max_examples: int | None = None) -> None:
        """The property on vmstate's pc machine: scenarios from
        :func:`vmstate.strategies.scenarios` (``devices``, ``operations``
        as that function takes them) judged by
        :func:`vmstate.fuzz.campaign.check_scenario` against ``sections`` (default
        the real schemas).  QEMU 7.2's own visible migrations are accepted;
        anything else fails the test with the shrunk trace."""
        from hypothesis import given, reject

        from vmstate.fuzz.campaign import check_scenario, guest_operations
        from vmstate.strategies import scenarios

        @self._settings(max_examples)
        @given(scenarios(devices=devices, operations=operations))
        def migration_is_invisible(trace: str) -> None:
            outcome = check_scenario(trace, sections)
            if outcome.status == "costly":
                reject()
            if outcome.failed:
                from vmstate.check.checker import counterexample

                raise AssertionError(f"the guest can tell it was migrated ({outcome.status}, "
                                     f"{guest_operations(trace)} operations):\n"
                                     + counterexample(trace, outcome.verdict))

        migration_is_invisible()

    def device(self, factory: Callable, description, operations, max_examples: int | None = None,
               versions: Iterable[int] | None = None, max_step_ns: int = 10**9) -> None:
        """The property on a device of your own.  ``factory(clock)`` builds
        it; ``description`` is its :class:`vmstate.wire.table.Description`;
        ``operations`` draws callables ``op(device) -> observed``.  Each
        migration saves the state at a drawn version in ``versions``
        (default every one from the description's minimum to its version)
        as a real stream section, loads it into a fresh device on a clock
        at the same time, and goes on there."""
        from hypothesis import given
        from hypothesis import strategies as st

        chosen = list(versions) if versions is not None else list(range(description.minimum,
                                                                        description.version + 1))
        steps = st.one_of(
            operations.map(lambda op: _Step("op", op)),
            st.integers(1, max_step_ns).map(lambda ns: _Step("step", ns)),
            st.sampled_from(chosen).map(lambda v: _Step("migrate", v)),
        )

        @self._settings(max_examples)
        @given(st.lists(steps, min_size=1, max_size=20))
        def device_migration_is_invisible(scenario: list[_Step]) -> None:
            straight = _run_device(factory, description, scenario, migrate=False)
            migrated = _run_device(factory, description, scenario, migrate=True)
            for index, (a, b) in enumerate(zip(straight, migrated)):
                if a != b:
                    raise AssertionError(f"the guest can tell it was migrated: observation {index} is "
                                         f"{a!r} straight but {b!r} migrated\nscenario: {scenario!r}")
            assert len(straight) == len(migrated)

        device_migration_is_invisible()


def _run_device(factory: Callable, description, scenario: list[_Step], migrate: bool) -> list:
    """One run of a device scenario: (virtual time, observed value) per op."""
    from vmstate.wire import stream
    from vmstate.core.clock import VirtualClock

    clock = VirtualClock()
    device = factory(clock)
    seen = []
    for step in scenario:
        if step.kind == "op":
            seen.append((clock.now, step.value(device)))
        elif step.kind == "step":
            clock.warp(clock.now + step.value)
        elif migrate:
            data = stream.write([stream.Section(description.name, 0, description, step.value,
                                                device.get_state())])
            clock = VirtualClock(clock.now)
            twin = factory(clock)
            loaded = stream.read(data, lambda idstr, instance: (description, copy.deepcopy(twin.get_state()),
                                                                None),
                                 lambda sections: clock.now)
            twin.set_state(loaded.sections[0].state)
            device = twin
    return seen


@pytest.fixture
def migration_equivalence(request) -> MigrationEquivalence:
    """Run the migration-equivalence property (see :class:`MigrationEquivalence`)."""
    examples = request.config.getoption("--vmstate-examples", default=None)
    return MigrationEquivalence(examples or DEFAULT_EXAMPLES)
