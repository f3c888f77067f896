"""Sharing power in the energy tree (EnergyManager's pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from everpy_modules.EnergyManager.distribution import TreeError, active_entry, distribute, parse_tree
from hypothesis import given, settings
from hypothesis import strategies as st

from .trees import START, entry, evse, fuse, limits, node

NOW = datetime(2026, 1, 1, tzinfo=UTC)
V = 230.0


def share(tree: dict, now: datetime = NOW) -> dict[str, float]:
    return {uuid: a.current_A for uuid, a in distribute(parse_tree(tree, now), V).items()}


def test_fuse_is_split_equally() -> None:
    assert share(fuse("grid", 32, [evse("a"), evse("b")])) == {"a": 16, "b": 16, "grid": 32}


def test_an_evse_that_needs_less_leaves_the_rest_to_the_others() -> None:
    assert share(fuse("grid", 32, [evse("a", max_A=10), evse("b"), evse("c")])) == {
        "a": 10,
        "b": 11,
        "c": 11,
        "grid": 32,
    }


def test_fuse_above_demand_gives_each_evse_its_maximum() -> None:
    assert share(fuse("grid", 100, [evse("a", max_A=16), evse("b", max_A=20)]))["grid"] == 36


def test_below_minimum_current_an_evse_gets_nothing_and_the_last_listed_gives_way() -> None:
    result = share(fuse("grid", 16, [evse("a"), evse("b"), evse("c")]))
    assert result == {"a": 8, "b": 8, "c": 0, "grid": 16}


def test_an_evse_that_can_never_reach_its_minimum_gives_way_first() -> None:
    assert share(fuse("grid", 32, [evse("a", max_A=4), evse("b")])) == {"a": 0, "b": 32, "grid": 32}


def test_idle_evses_get_nothing_so_the_car_gets_the_whole_fuse() -> None:
    tree = fuse("grid", 32, [evse("a"), evse("b", state="Unplugged"), evse("c", state="Finished")])
    assert share(tree) == {"a": 32, "b": 0, "c": 0, "grid": 32}


def test_sub_distribution_fuse_and_grid_power_limit_both_hold() -> None:
    grid = node(
        "grid",
        [fuse("garage", 20, [evse("a"), evse("b")]), evse("c")],
        entry(limits(63, power_W=22000, source="grid")),
    )
    allocations = distribute(parse_tree(grid, NOW), V)
    assert allocations["a"].current_A == allocations["b"].current_A == 10
    assert allocations["a"].source == "garage fuse"
    assert allocations["grid"].power_W <= 22000
    assert allocations["c"].source == "grid"
    assert allocations["c"].current_A == pytest.approx((22000 - 2 * 10 * 3 * V) / (3 * V), abs=0.01)


def test_single_phase_fuse_limits_evses_to_one_phase_and_power_follows() -> None:
    allocations = distribute(parse_tree(fuse("grid", 16, [evse("a")], phases=1), NOW), V)
    assert allocations["a"].phases == 1
    assert allocations["a"].power_W == 16 * V


def test_power_limit_counts_phases() -> None:
    tree = node("grid", [evse("three"), evse("one", phases=1)], entry(limits(power_W=9200)))
    allocations = distribute(parse_tree(tree, NOW), V)
    # progressive filling in amps: both at x A, x*(3+1)*230 = 9200 -> 10 A each
    assert allocations["three"].current_A == allocations["one"].current_A == 10
    assert allocations["three"].power_W == 6900 and allocations["one"].power_W == 2300


def test_schedule_entry_in_force_follows_the_clock() -> None:
    later = (NOW + timedelta(hours=1)).isoformat()
    tree = node("grid", [evse("a")], entry(limits(32)), entry(limits(10), timestamp=later))
    assert share(tree, NOW)["a"] == 32
    assert share(tree, NOW + timedelta(hours=2))["a"] == 10
    # the first entry applies at once even when it starts in the future
    assert active_entry([entry(limits(8), timestamp=later)], NOW)["limits_to_root"]["ac_max_current_A"]["value"] == 8


def test_malformed_tree_is_refused_with_the_node_named() -> None:
    broken = fuse("grid", 32, [evse("a")])
    broken["children"][0]["schedule_import"][0]["limits_to_root"]["ac_max_current_A"] = {"value": "lots"}
    with pytest.raises(TreeError, match="grid/a"):
        parse_tree(broken, NOW)
    with pytest.raises(TreeError, match="not in 1..3"):
        parse_tree(fuse("grid", 32, [evse("a", phases=5)]), NOW)
    with pytest.raises(TreeError):
        parse_tree({"children": []}, NOW)


def test_no_limit_anywhere_is_refused() -> None:
    unlimited = {"uuid": "x", "node_type": "Evse", "children": [], "schedule_import": [], "schedule_export": []}
    with pytest.raises(TreeError, match="unlimited"):
        distribute(parse_tree(unlimited, NOW), V)


def test_timestamp_parsing_accepts_z_suffix() -> None:
    assert active_entry([entry(limits(1), START)], NOW) is not None


leaf_specs = st.lists(
    st.tuples(st.floats(0, 63), st.sampled_from([1, 3]), st.sampled_from([0.0, 6.0])), min_size=1, max_size=6
)


@settings(max_examples=150, deadline=None)
@given(leaf_specs, st.floats(0, 80), st.floats(1000, 50000), st.integers(0, 5))
def test_limits_always_hold_and_nobody_is_short_of_minimum(specs, fuse_A, power_W, split) -> None:
    leaves = [evse(f"e{i}", max_A=a, phases=p, min_A=m) for i, (a, p, m) in enumerate(specs)]
    sub = fuse("sub", fuse_A / 2, leaves[:split])
    tree = node("grid", [sub, *leaves[split:]], entry(limits(fuse_A, power_W=power_W)))
    allocations = distribute(parse_tree(tree, NOW), V)
    for i, (max_A, _phases, min_A) in enumerate(specs):
        got = allocations[f"e{i}"]
        assert got.current_A <= max_A + 1e-6
        assert got.current_A == 0 or got.current_A >= min_A - 0.01
    assert allocations["grid"].current_A <= fuse_A + 1e-6
    assert allocations["grid"].power_W <= power_W + 1e-6
    assert allocations["sub"].current_A <= fuse_A / 2 + 1e-6
