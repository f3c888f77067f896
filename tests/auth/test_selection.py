"""The EVSE-choice rules of Auth, without bus or clock."""

from __future__ import annotations

from everpy_modules.Auth.selection import (
    EvseSlot,
    Selection,
    SelectionAlgorithm,
    allowed_evse_ids,
    choose_evse,
    token_value,
)

FIND_FIRST = SelectionAlgorithm.FIND_FIRST
PLUG_EVENTS = SelectionAlgorithm.PLUG_EVENTS
TOKEN = {"id_token": {"value": "Abc", "type": "ISO14443"}, "authorization_type": "RFID"}


def slots(count: int) -> list[EvseSlot]:
    return [EvseSlot(index=i, evse_id=i + 1) for i in range(count)]


def test_single_free_evse_is_taken_without_a_car_by_both_algorithms() -> None:
    for algorithm in SelectionAlgorithm:
        assert choose_evse(slots(1), algorithm) == slots(1)[0]


def test_most_recently_plugged_car_waiting_wins() -> None:
    evses = slots(3)
    evses[0].waiting_for_auth, evses[0].plug_order = True, 1
    evses[2].waiting_for_auth, evses[2].plug_order = True, 2
    for algorithm in SelectionAlgorithm:
        assert choose_evse(evses, algorithm).evse_id == 3


def test_without_a_car_find_first_takes_the_first_free_and_plug_events_waits() -> None:
    evses = slots(3)
    evses[0].transaction_token = TOKEN
    assert choose_evse(evses, FIND_FIRST).evse_id == 2
    assert choose_evse(evses, PLUG_EVENTS) is Selection.WAIT_FOR_PLUG


def test_busy_disabled_or_already_authorized_evses_are_not_candidates() -> None:
    evses = slots(3)
    evses[0].transaction_token = TOKEN
    evses[1].enabled = False
    evses[2].authorized_token = TOKEN
    assert choose_evse(evses, FIND_FIRST) is Selection.NONE_FREE


def test_a_plugged_car_with_a_running_transaction_is_not_waiting() -> None:
    evses = slots(2)
    evses[1].waiting_for_auth, evses[1].plug_order, evses[1].transaction_token = True, 5, TOKEN
    assert choose_evse(evses, PLUG_EVENTS).evse_id == 1  # the only free one


def test_allowed_evse_ids_restrict_the_choice() -> None:
    evses = slots(3)
    assert choose_evse(evses, FIND_FIRST, allowed_evse_ids={3}).evse_id == 3
    assert choose_evse(evses, FIND_FIRST, allowed_evse_ids={7}) is Selection.NONE_FREE


def test_allowed_ids_combine_token_connectors_and_validator_evse_ids() -> None:
    assert allowed_evse_ids(TOKEN, None) is None
    assert allowed_evse_ids({**TOKEN, "connectors": [1, 2]}, {"evse_ids": [2, 3]}) == {2}
    assert allowed_evse_ids(TOKEN, {"authorization_status": "Accepted", "evse_ids": [4]}) == {4}


def test_reserved_evse_goes_only_to_its_reservation() -> None:
    evses = slots(2)
    evses[0].reserved, evses[0].reservation_id = True, 7
    assert choose_evse(evses, FIND_FIRST).evse_id == 2
    assert choose_evse(evses, FIND_FIRST, reservation_id=8).evse_id == 2
    assert choose_evse(evses, FIND_FIRST, reservation_id=7).evse_id == 1  # preferred over the free one
    evses[1].transaction_token = TOKEN
    assert choose_evse(evses, FIND_FIRST) is Selection.NONE_FREE


def test_reservation_without_known_id_accepts_any_token_holding_a_reservation() -> None:
    evses = slots(1)
    evses[0].reserved = True
    assert choose_evse(evses, FIND_FIRST) is Selection.NONE_FREE
    assert choose_evse(evses, FIND_FIRST, reservation_id=3) == evses[0]


def test_token_values_compare_ignoring_case() -> None:
    assert token_value(TOKEN) == token_value({"id_token": {"value": "aBC"}})
    assert token_value(None) is None


def test_faulted_evse_is_not_a_candidate() -> None:
    evses = slots(2)
    evses[0].faulted = True
    evses[0].waiting_for_auth, evses[0].plug_order = True, 1
    assert choose_evse(evses, PLUG_EVENTS).evse_id == 2


def test_finished_session_with_the_car_still_plugged_in_is_not_free() -> None:
    evses = slots(2)
    evses[0].session_active = True  # transaction over, car not unplugged yet
    assert choose_evse(evses, FIND_FIRST).evse_id == 2
    evses[1].session_active = evses[1].waiting_for_auth = True
    assert choose_evse(evses, PLUG_EVENTS).evse_id == 2


def test_cars_plugged_in_before_the_cut_off_are_not_matched() -> None:
    evses = slots(2)
    evses[0].session_active = evses[0].waiting_for_auth = True
    evses[0].plugged_at, evses[0].plug_order = 10.0, 1
    assert choose_evse(evses, PLUG_EVENTS, plugged_after=5.0).evse_id == 1
    assert choose_evse(evses, PLUG_EVENTS, plugged_after=20.0).evse_id == 2  # only evse 2 is left
