"""The virtual clock and its timers: QEMU's qtest_clock_warp semantics."""
from vmstate.core.clock import HostClock, VirtualClock

HOUR = 3600 * 1_000_000_000


def test_timers_fire_in_deadline_order_at_their_deadline():
    clock = VirtualClock()
    fired = []
    for deadline in (300, 100, 200):
        clock.timer(lambda d=deadline: fired.append((d, clock.now))).mod(deadline)
    clock.warp(1000)
    assert fired == [(100, 100), (200, 200), (300, 300)]
    assert clock.now == 1000


def test_equal_deadlines_fire_in_the_order_they_were_armed():
    clock = VirtualClock()
    fired = []
    timers = [clock.timer(lambda n=n: fired.append(n)) for n in range(4)]
    for n in (2, 0, 3, 1):
        timers[n].mod(50)
    clock.warp(50)
    assert fired == [2, 0, 3, 1]


def test_rearming_moves_a_timer_to_the_back_of_its_tie():
    clock = VirtualClock()
    fired = []
    a = clock.timer(lambda: fired.append("a"))
    b = clock.timer(lambda: fired.append("b"))
    a.mod(10)
    b.mod(10)
    a.mod(10)
    clock.warp(10)
    assert fired == ["b", "a"]


def test_deleted_and_rearmed_timers_fire_once_at_the_latest_deadline():
    clock = VirtualClock()
    fired = []
    t = clock.timer(lambda: fired.append(clock.now))
    t.mod(10)
    t.delete()
    assert not t.pending and t.expire == -1
    t.mod(30)
    t.mod(20)
    clock.warp(100)
    assert fired == [20]


def test_a_timer_armed_for_now_by_a_callback_runs_in_the_same_pass():
    clock = VirtualClock()
    fired = []
    second = clock.timer(lambda: fired.append(("second", clock.now)))
    clock.timer(lambda: (fired.append(("first", clock.now)), second.mod(clock.now))).mod(40)
    clock.warp(40)
    assert fired == [("first", 40), ("second", 40)]


def test_a_deadline_in_the_past_fires_at_the_current_time_on_the_next_advance():
    """QEMU clamps an overdue timer's delta to 0, so the warp's first step
    has length 0 and the timer runs before time moves."""
    clock = VirtualClock(start=100)
    fired = []
    clock.timer(lambda: fired.append(clock.now)).mod(50)
    clock.warp(101)
    assert fired == [100]


def test_warp_to_now_or_the_past_runs_nothing():
    """qtest_clock_warp loops only while the clock is before the destination."""
    clock = VirtualClock(start=100)
    fired = []
    clock.timer(lambda: fired.append(clock.now)).mod(100)
    clock.warp(100)
    clock.warp(10)
    assert fired == [] and clock.now == 100


def test_step_without_argument_goes_to_the_next_deadline():
    clock = VirtualClock()
    clock.timer(lambda: None).mod(12345)
    assert clock.step() == 12345
    assert clock.step() == 12345  # nothing pending: QEMU 7.2 stays put


def _count_heap_visits(clock, monkeypatch):
    visits = []
    head = clock._head
    monkeypatch.setattr(clock, "_head", lambda: visits.append(1) or head())
    return visits


def test_advancing_an_hour_costs_the_same_as_a_nanosecond(monkeypatch):
    clock = VirtualClock()
    visits = _count_heap_visits(clock, monkeypatch)
    clock.warp(1)
    one_ns = len(visits)
    visits.clear()
    clock.warp(1 + HOUR)
    assert len(visits) == one_ns


def test_advancing_costs_grow_with_events_not_time(monkeypatch):
    clock = VirtualClock()
    for n in range(10):
        clock.timer(lambda: None).mod((n + 1) * HOUR // 10)
    visits = _count_heap_visits(clock, monkeypatch)
    clock.warp(HOUR)
    assert len(visits) <= 3 * 10 + 2


def test_host_clock_moves_on_while_paused_and_its_timers_follow():
    virtual = VirtualClock()
    host = HostClock(virtual, epoch=1_000_000)
    fired = []
    host.timer(lambda: fired.append((virtual.now, host.now))).mod(1_000_500)
    host.pause(300)  # downtime: host time jumps, virtual time stands still
    assert virtual.now == 0 and host.now == 1_000_300
    virtual.warp(1000)
    assert fired == [(200, 1_000_500)]
