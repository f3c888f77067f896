"""Sharing the power of an energy tree among its EVSEs. Pure functions, no bus, no clock.

The tree comes from EnergyFlowRequest objects (types/energy.yaml). Every node may limit the current
per phase (A) and the total power (W) flowing through it; leaves are the EVSEs. Power is shared by
progressive filling: all EVSEs get the same current, raised together until a limit binds; the EVSEs
behind that limit stop there and the others keep rising. This is max-min fair: nobody can get more
without taking from someone who has less. An EVSE that would get less than it can charge with
(ac_min_current_A, 6 A for AC) gets nothing instead, and its share goes to the others; when several
are short, the EVSEs listed later in the tree give way first.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# EVSE states in which no car wants power; such EVSEs get 0 so the others can use the budget.
IDLE_EVSE_STATES = frozenset({"Unplugged", "Finished", "Disabled"})
_EPSILON = 1e-9


class TreeError(ValueError):
    """The energy_flow_request tree is malformed; the message says where."""


@dataclass(frozen=True)
class Limit:
    value: float
    source: str


@dataclass
class Node:
    uuid: str
    node_type: str
    max_current_A: Limit | None = None
    max_power_W: Limit | None = None
    max_phases: int = 3
    min_current_A: float = 0.0
    wants_power: bool = True
    children: list[Node] = field(default_factory=list)

    @property
    def is_consumer(self) -> bool:
        """Leaves take power; a childless Generic node is an empty junction, not a consumer."""
        return not self.children and self.node_type != "Generic"

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True)
class Allocation:
    current_A: float  # per phase
    power_W: float
    phases: int
    source: str  # what limited it

    def as_limits(self) -> dict[str, Any]:
        """This allocation as a LimitsRes object."""
        return {
            "ac_max_current_A": {"value": self.current_A, "source": self.source},
            "total_power_W": {"value": self.power_W, "source": self.source},
            "ac_max_phase_count": {"value": self.phases, "source": self.source},
        }


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def active_entry(schedule: list[dict[str, Any]], now: datetime) -> dict[str, Any] | None:
    """The entry in force at `now`: the latest that has started, or the first if none has yet."""
    if not schedule:
        return None
    ordered = sorted(schedule, key=lambda entry: parse_time(entry["timestamp"]))
    current = ordered[0]
    for entry in ordered[1:]:
        if parse_time(entry["timestamp"]) <= now:
            current = entry
    return current


def parse_tree(request: dict[str, Any], now: datetime, path: str = "") -> Node:
    """Build the node tree from an EnergyFlowRequest, taking each node's import limits at `now`."""
    where = f"{path}/{request.get('uuid', '?')}"
    try:
        uuid = str(request["uuid"])
        entry = active_entry(request.get("schedule_import") or [], now)
        limits = (entry or {}).get("limits_to_root") or {}
        node = Node(
            uuid=uuid,
            node_type=str(request.get("node_type", "Undefined")),
            max_current_A=_limit(limits.get("ac_max_current_A"), uuid),
            max_power_W=_limit(limits.get("total_power_W"), uuid),
            max_phases=int((limits.get("ac_max_phase_count") or {}).get("value", 3)),
            min_current_A=float((limits.get("ac_min_current_A") or {}).get("value", 0.0)),
            wants_power=request.get("evse_state") not in IDLE_EVSE_STATES,
        )
        node.children = [parse_tree(child, now, where) for child in request.get("children") or []]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, TreeError):
            raise
        raise TreeError(f"energy_flow_request node {where}: {exc!r}") from exc
    if not 1 <= node.max_phases <= 3:
        raise TreeError(f"energy_flow_request node {where}: ac_max_phase_count {node.max_phases} not in 1..3")
    return node


def _limit(raw: dict[str, Any] | None, uuid: str) -> Limit | None:
    if raw is None:
        return None
    value = float(raw["value"])
    if value < 0 or math.isnan(value):
        raise ValueError(f"limit {value} must be a non-negative number")
    return Limit(value, str(raw.get("source") or uuid))


@dataclass(eq=False)
class _Consumer:
    node: Node
    order: int  # position in the tree; later = gives way first
    phases: int
    watts_per_amp: float
    cap_A: float
    cap_source: str
    constraints: list[_Constraint]
    current_A: float = 0.0
    source: str = ""


@dataclass(eq=False)
class _Constraint:
    """One node's limit on the sum of its consumers' current or power."""

    limit: Limit
    per_watt: bool  # True: limit in W, consumers weigh watts_per_amp; False: limit in A
    members: list[_Consumer] = field(default_factory=list)

    def weight(self, consumer: _Consumer) -> float:
        return consumer.watts_per_amp if self.per_watt else 1.0

    def headroom_per_amp(self, active: set[int]) -> float:
        """How far every active member can still rise (A) before this limit binds."""
        used = sum(self.weight(c) * c.current_A for c in self.members)
        rising = sum(self.weight(c) for c in self.members if id(c) in active)
        return math.inf if rising == 0 else max(0.0, self.limit.value - used) / rising


def distribute(root: Node, nominal_voltage_V: float) -> dict[str, Allocation]:
    """Allocation for every node of the tree (consumers and the nodes above them)."""
    consumers = _consumers(root, nominal_voltage_V)
    excluded: set[int] = set()
    while True:
        _fill(consumers, excluded)
        short = [c for c in consumers if id(c) not in excluded and 0 < c.current_A < c.node.min_current_A]
        if not short:
            break
        # Those that can never reach their minimum go first, then the ones listed last.
        short.sort(key=lambda c: (c.cap_A >= c.node.min_current_A, c.order))
        excluded.add(id(short[-1]) if short[0].cap_A >= short[0].node.min_current_A else id(short[0]))
    return _allocations(root, consumers, nominal_voltage_V)


def _consumers(root: Node, voltage: float) -> list[_Consumer]:
    found: list[_Consumer] = []

    def visit(node: Node, inherited: list[_Constraint], phases: int) -> None:
        phases = min(phases, node.max_phases)
        if node.is_consumer:
            watts_per_amp = phases * voltage
            caps = [(math.inf, "unlimited")]
            if node.max_current_A is not None:
                caps.append((node.max_current_A.value, node.max_current_A.source))
            if node.max_power_W is not None:
                caps.append((node.max_power_W.value / watts_per_amp, node.max_power_W.source))
            cap, source = min(caps, key=lambda item: item[0])
            if not node.wants_power:
                cap, source = 0.0, f"{node.uuid} idle"
            consumer = _Consumer(node, len(found), phases, watts_per_amp, cap, source, list(inherited))
            for constraint in inherited:
                constraint.members.append(consumer)
            found.append(consumer)
            return
        own = [
            _Constraint(limit, per_watt)
            for limit, per_watt in ((node.max_current_A, False), (node.max_power_W, True))
            if limit is not None
        ]
        for child in node.children:
            visit(child, inherited + own, phases)

    visit(root, [], 3)
    return found


def _fill(consumers: list[_Consumer], excluded: set[int]) -> None:
    """Progressive filling: raise all active consumers together until each is stopped by a limit."""
    for consumer in consumers:
        consumer.current_A = 0.0
        consumer.source = "excluded: below minimum current" if id(consumer) in excluded else ""
    active = {id(c) for c in consumers if id(c) not in excluded and c.cap_A > 0}
    for consumer in consumers:
        if id(consumer) not in excluded and consumer.cap_A <= 0:
            consumer.source = consumer.cap_source
    constraints = {id(k): k for c in consumers for k in c.constraints}.values()
    while active:
        rising = [c for c in consumers if id(c) in active]
        step = min(
            min(c.cap_A - c.current_A for c in rising),
            min((k.headroom_per_amp(active) for k in constraints), default=math.inf),
        )
        if math.isinf(step):
            raise TreeError("no limit anywhere in the energy tree: refusing to hand out unlimited power")
        for consumer in rising:
            consumer.current_A += step
        for consumer in rising:
            if consumer.cap_A - consumer.current_A <= _EPSILON:
                active.discard(id(consumer))
                consumer.source = consumer.cap_source
        for constraint in constraints:
            if constraint.headroom_per_amp(active) <= _EPSILON:
                for member in constraint.members:
                    if id(member) in active:
                        active.discard(id(member))
                        member.source = constraint.limit.source


def _allocations(root: Node, consumers: list[_Consumer], voltage: float) -> dict[str, Allocation]:
    by_node = {id(c.node): c for c in consumers}
    result: dict[str, Allocation] = {}

    def visit(node: Node) -> tuple[float, float, int]:
        consumer = by_node.get(id(node))
        if consumer is not None:
            current = _floor_centi(consumer.current_A)
            power = _floor_centi(current * consumer.watts_per_amp)
            result[node.uuid] = Allocation(current, power, consumer.phases, consumer.source)
            return current, power, consumer.phases
        totals = [visit(child) for child in node.children]
        current = _floor_centi(sum(t[0] for t in totals))
        power = _floor_centi(sum(t[1] for t in totals))
        phases = max((t[2] for t in totals), default=min(node.max_phases, 3))
        result[node.uuid] = Allocation(current, power, phases, f"sum of {len(totals)} children")
        return current, power, phases

    visit(root)
    return result


def _floor_centi(value: float) -> float:
    """Round down to 0.01 so rounding never pushes a sum above its limit."""
    return math.floor(value * 100 + 1e-6) / 100
