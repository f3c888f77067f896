"""The change pacer of the shared OCPP core alone, on a FakeClock: a burst at once, then one change per
interval, the latest state always delivered, a state that flaps back sends nothing, forced deliveries
are never held, and the coalescing log is throttled."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import yaml

from everpy.core.clock import FakeClock
from everpy.ocpp.pacing import BURST_RANGE, INTERVAL_RANGE_S, ChangePacer, PacingSettings

LOG = logging.getLogger("everpy.test.pacing")


class Peer:
    """Records each delivery with its (fake) time; ``online`` False makes deliveries fail."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.deliveries: list[tuple[float, int, str]] = []
        self.online = True

    async def deliver(self, key: int, state: str) -> bool:
        if not self.online:
            return False
        self.deliveries.append((self.clock.monotonic(), key, state))
        return True

    def states(self, key: int = 1) -> list[str]:
        return [state for _, k, state in self.deliveries if k == key]


def pacer(burst: int = 3, interval_s: float = 10.0) -> tuple[ChangePacer[int, str], Peer, FakeClock]:
    clock = FakeClock()
    peer = Peer(clock)
    return ChangePacer(clock, PacingSettings(burst, interval_s), peer.deliver, LOG), peer, clock


async def flap(p: ChangePacer[int, str], clock: FakeClock, seconds: float, per_second: int = 100,
               key: int = 1) -> str:
    """Faulted/SuspendedEVSE alternating `per_second` times a second; returns the last state."""
    state = "Faulted"
    for n in range(int(seconds * per_second)):
        state = "Faulted" if n % 2 == 0 else "SuspendedEVSE"
        await p.change(key, state)
        await clock.advance(1 / per_second)
    return state


async def test_a_burst_goes_out_at_once():
    p, peer, clock = pacer(burst=3)
    for state in ("Preparing", "Charging", "SuspendedEV"):
        await p.change(1, state)
    assert peer.deliveries == [(0.0, 1, "Preparing"), (0.0, 1, "Charging"), (0.0, 1, "SuspendedEV")]


async def test_beyond_the_burst_one_change_per_interval_and_the_latest_is_delivered():
    p, peer, clock = pacer(burst=3, interval_s=10.0)
    last = await flap(p, clock, seconds=60.5)  # 6,050 changes
    await clock.advance(20)
    assert len(peer.deliveries) <= 3 + 60 / 10 + 1
    assert peer.states()[-1] == last == p.delivered(1)
    gaps = [b[0] - a[0] for a, b in zip(peer.deliveries[3:], peer.deliveries[4:], strict=False)]
    assert all(gap >= 9.9 for gap in gaps)  # the bucket refills continuously: one slot per interval
    assert p.coalesced(1) > 2900  # every held change replaced or flapped back


async def test_a_held_change_goes_out_when_the_slot_opens_with_its_own_time():
    p, peer, clock = pacer(burst=1, interval_s=10.0)
    await p.change(1, "Preparing")
    await clock.advance(1)
    await p.change(1, "Charging")
    assert peer.states() == ["Preparing"] and p.held(1) == "Charging"
    await clock.advance(8.9)
    assert peer.states() == ["Preparing"]
    await clock.advance(0.2)
    assert peer.deliveries[-1] == (pytest.approx(10.0), 1, "Charging")


async def test_a_state_that_flaps_back_to_the_delivered_one_sends_nothing():
    p, peer, clock = pacer(burst=1, interval_s=10.0)
    await p.change(1, "Available")
    await p.change(1, "Faulted")  # held
    await p.change(1, "Available")  # back to what the peer has
    assert p.held(1) is None
    await clock.advance(60)
    assert peer.states() == ["Available"]


async def test_a_forced_delivery_is_never_held_and_replaces_a_held_state():
    p, peer, clock = pacer(burst=1, interval_s=10.0)
    await p.change(1, "Available")
    await p.change(1, "Faulted")  # held: the bucket is empty
    await p.force(1, "Faulted")  # e.g. TriggerMessage(StatusNotification)
    await p.force(1, "Faulted")  # forced twice: sent twice, unlike a change
    assert peer.states() == ["Available", "Faulted", "Faulted"] and p.held(1) is None
    await clock.advance(60)
    assert peer.states() == ["Available", "Faulted", "Faulted"]


async def test_keys_are_paced_apart():
    p, peer, clock = pacer(burst=2, interval_s=10.0)
    await flap(p, clock, seconds=1, key=1)
    await p.change(2, "Charging")
    assert peer.states(2) == ["Charging"]
    assert peer.deliveries[-1][0] == pytest.approx(1.0)


async def test_a_failed_delivery_is_not_taken_as_delivered():
    p, peer, clock = pacer(burst=5)
    peer.online = False
    await p.change(1, "Faulted")
    assert p.delivered(1) is None
    peer.online = True
    await p.change(1, "Faulted")
    assert peer.states() == ["Faulted"]


async def test_coalescing_is_logged_a_few_times_a_minute(caplog):
    p, peer, clock = pacer(burst=3, interval_s=1.0)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        await flap(p, clock, seconds=120, per_second=20)
    lines = [r for r in caplog.records if "coalesced" in r.getMessage()]
    assert 1 <= len(lines) <= 3
    assert "more like this" in lines[-1].getMessage()


async def test_close_drops_held_states():
    p, peer, clock = pacer(burst=1)
    await p.change(1, "Available")
    await p.change(1, "Faulted")
    p.close()
    await clock.advance(60)
    assert peer.states() == ["Available"] and clock.pending_timers == 0


@pytest.mark.parametrize(("burst", "interval_s"), [(0, 5.0), (101, 5.0), (5, 0.0), (5, 0.05), (5, 3601.0)])
def test_settings_out_of_range_are_refused(burst: int, interval_s: float):
    with pytest.raises(ValueError, match="pacing"):
        PacingSettings(burst, interval_s)


async def test_a_change_overtaken_while_a_delivery_is_in_flight_is_never_sent_after_the_newer_one():
    clock = FakeClock()
    gate = asyncio.Event()
    delivered: list[str] = []

    async def slow_deliver(key: int, state: str) -> bool:
        if state == "Preparing":
            await gate.wait()  # the CSMS answers late
        delivered.append(state)
        return True

    p: ChangePacer[int, str] = ChangePacer(clock, PacingSettings(5, 10.0), slow_deliver, LOG)
    first = asyncio.ensure_future(p.change(1, "Preparing"))
    await clock.advance(0)
    stale = asyncio.ensure_future(p.change(1, "Charging"))  # waits for the delivery in flight
    newest = asyncio.ensure_future(p.change(1, "Faulted"))
    gate.set()
    await asyncio.gather(first, stale, newest)
    assert delivered == ["Preparing", "Faulted"]


def test_the_module_config_ranges_are_the_pacers():
    """The OCPP module's run config is refused outside these ranges at load; the pacer refuses the same."""
    manifest = yaml.safe_load((Path(__file__).resolve().parents[3] / "modules" / "OCPP" / "manifest.yaml").read_text())
    burst, interval = manifest["config"]["status_burst"], manifest["config"]["status_interval_s"]
    assert (burst["minimum"], burst["maximum"]) == BURST_RANGE
    assert (interval["minimum"], interval["maximum"]) == INTERVAL_RANGE_S
    assert PacingSettings(burst["default"], interval["default"]) == PacingSettings()
