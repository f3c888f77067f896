"""Full charging sessions on the real bus: EvseManager, simulated board/meter, car, RFID, Auth and
energy management as modules over a private mosquitto, with a FakeClock for the long timers."""

from __future__ import annotations

import pytest

from everpy import HandlerError

from .sil_system import WAIT_S, error_types, sil, until


async def test_plug_then_swipe_charges_counts_energy_and_finishes_on_unplug() -> None:
    async with sil() as s:
        await s.car("iec_wait_pwr_ready;draw_power_regulated 16,3;sleep 60;unplug")
        started = (await s.expect("SessionStarted", "AuthRequired"))[0]
        assert started["session_started"]["reason"] == "EVConnected"
        await s.swipe("CARD1")
        authorized, tx_started, _ = await s.expect("Authorized", "TransactionStarted", "PrepareCharging")
        assert tx_started["transaction_started"]["id_tag"]["id_token"]["value"] == "CARD1"
        await s.expect("ChargingStarted")
        at_c = s.clock.monotonic()
        await s.relays(True)
        assert s.clock.monotonic() - at_c < 3  # relays closed without waiting on any timer

        await s.advance(61)
        await s.relays(False)
        finished = await s.expect("ChargingFinished", "TransactionFinished", "SessionFinished")
        tx_finished = finished[1]["transaction_finished"]
        assert tx_finished["reason"] == "EVDisconnected"
        # 16 A x 3 phases x 230 V for about 60 s = 184 Wh (the meter reports once per second).
        assert 165 <= tx_finished["energy_Wh"] <= 190
        assert tx_finished["meter_value"]["energy_Wh_import"]["total"] >= tx_finished["energy_Wh"]
        assert len({e["uuid"] for e in finished + [started, authorized]}) == 1


async def test_swipe_then_plug_starts_the_transaction_at_plug_in() -> None:
    async with sil() as s:
        await s.swipe("CARD1")
        started, _ = await s.expect("SessionStarted", "Authorized")
        assert started["session_started"]["reason"] == "Authorized"
        await s.car("iec_wait_pwr_ready;draw_power_regulated 16,3")
        await s.expect("TransactionStarted", "PrepareCharging", "ChargingStarted")
        await s.relays(True)


async def test_auth_timeout_when_no_car_comes() -> None:
    async with sil() as s:
        await s.swipe("CARD1")
        await s.expect("SessionStarted", "Authorized")
        await s.advance(11)  # Auth's connection_timeout is 10 s
        await s.expect("PluginTimeout", "SessionFinished")
        await s.auth_status.wait_for(lambda m: m["status"] == "TimedOut", WAIT_S)
        # The EVSE is free again: a car plugging in now has to authorize.
        await s.car("plugin")
        await s.expect("SessionStarted", "AuthRequired")


async def test_ev_pause_and_resume() -> None:
    async with sil() as s:
        await s.charging(script_tail="sleep 10;pause;sleep 10;draw_power_regulated 16,3;sleep 3600")
        await s.advance(11)
        await s.expect("ChargingPausedEV")
        await s.relays(False)
        assert s.car_sees.latest["cp_pwm_duty_cycle"] == pytest.approx(32 / 0.6, abs=0.01)  # PWM stays on
        await s.advance(10)
        await s.expect("ChargingResumed")
        await s.relays(True)


async def test_evse_pause_and_resume() -> None:
    async with sil() as s:
        await s.charging()
        assert await s.system.call("evse", "evse", "pause_charging") is True
        paused = (await s.expect("ChargingPausedEVSE"))[0]
        assert paused["charging_paused_evse"]["reasons"] == ["UserPause"]
        await s.relays(False)
        await s.car_sees.wait_for(lambda m: m["cp_pwm_duty_cycle"] == 100, WAIT_S)  # X1: no PWM
        assert await s.system.call("evse", "evse", "resume_charging") is True
        await s.expect("ChargingResumed")
        await s.relays(True)


async def test_same_token_stops_the_transaction() -> None:
    async with sil() as s:
        await s.charging()
        await s.swipe("CARD1")
        events = await s.expect("StoppingCharging", "Deauthorized", "ChargingFinished", "TransactionFinished")
        assert events[-1]["transaction_finished"]["reason"] == "Local"
        await s.relays(False)
        await s.auth_status.wait_for(lambda m: m["status"] == "UsedToStop", WAIT_S)
        await s.car("unplug")
        await s.expect("SessionFinished")


async def test_unplug_while_charging() -> None:
    async with sil() as s:
        await s.charging()
        await s.car("unplug")
        await s.relays(False)
        events = await s.expect("ChargingFinished", "TransactionFinished", "SessionFinished")
        assert events[1]["transaction_finished"]["reason"] == "EVDisconnected"


async def test_diode_fault_stops_power_until_unplug() -> None:
    async with sil() as s:
        await s.charging()
        await s.car("diode_fail")
        paused = await s.skip_to("ChargingPausedEVSE")
        assert paused["charging_paused_evse"]["reasons"] == ["Error"]
        await s.relays(False)
        await s.board_errors.wait_for(lambda e: e["type"] == "evse_board_support/DiodeFault", WAIT_S)
        await s.car_sees.wait_for(lambda m: m["cp_pwm_duty_cycle"] == 0, WAIT_S)  # F first ...
        await s.advance(0.5)
        await s.car_sees.wait_for(lambda m: m["cp_pwm_duty_cycle"] == 100, WAIT_S)  # ... then X1
        assert s.evse.charger.transaction is not None  # a diode fault pauses, it does not end the transaction
        await s.car("unplug")
        events = await s.expect("ChargingFinished", "TransactionFinished", "SessionFinished")
        assert events[1]["transaction_finished"]["reason"] == "EVDisconnected"
        await s.board_errors.wait_for(lambda e: e["state"] == "ClearedByModule", WAIT_S)
        await until(lambda: not s.evse.charger.facts.faults, what="fault cleared in the EVSE")


async def test_rcd_trip_ends_the_transaction_with_ground_fault() -> None:
    async with sil() as s:
        await s.charging()
        await s.car("rcd_current 20")
        await s.relays(False)
        tripped = await s.board_errors.wait_for(lambda e: e["type"] == "evse_board_support/RCDTriggered", WAIT_S)
        assert tripped["sub_type"] == "DC"
        finished = await s.skip_to("TransactionFinished")
        assert finished["transaction_finished"]["reason"] == "GroundFault"
        # The EVSE reports the board's fault as its own (for OCPP) and that it is inoperative.
        await s.evse_errors.wait_for(lambda e: e["type"] == "evse_board_support/RCDTriggered", WAIT_S)
        await s.evse_errors.wait_for(lambda e: e["type"] == "evse_manager/Inoperative", WAIT_S)
        await s.car("unplug")
        await s.expect("SessionFinished")
        await s.board_errors.wait_for(lambda e: e["state"] == "ClearedByModule", WAIT_S)
        cleared = {e["type"] for e in await _until_cleared(s, 2)}
        assert cleared == {"evse_board_support/RCDTriggered", "evse_manager/Inoperative"}


async def _until_cleared(s, count: int) -> list[dict]:
    cleared: list[dict] = []
    while len(cleared) < count:
        event = await s.evse_errors.next(WAIT_S)
        if event["state"] == "ClearedByModule":
            cleared.append(event)
    return cleared


async def test_limit_changes_mid_session_follow_the_grid() -> None:
    async with sil() as s:
        await s.charging()
        limits = s.system.watch("evse", "evse", "limits")

        def external(amps: float | None) -> dict:
            entries = [] if amps is None else [{
                "timestamp": "2020-01-01T00:00:00.000Z",
                "limits_to_root": {"ac_max_current_A": {"value": amps, "source": "test"}},
                "limits_to_leaves": {},
            }]
            return {"schedule_import": entries, "schedule_export": []}

        await s.system.call("grid", "external_limits", "set_external_limits", value=external(10))
        await limits.wait_for(lambda v: v["max_current"] == 10, WAIT_S)
        await s.advance(5)  # PWM changes at most every 5 s
        await s.car_sees.wait_for(lambda m: m["cp_pwm_duty_cycle"] == pytest.approx(10 / 0.6, abs=0.01), WAIT_S)
        await s.advance(2)  # the regulated car follows; the meter shows it
        await until(lambda: abs(s.evse.last_meter["current_A"]["L1"] - 10) < 0.01, what="car drawing 10 A")

        await s.system.call("grid", "external_limits", "set_external_limits", value=external(3))
        paused = await s.skip_to("ChargingPausedEVSE")
        assert paused["charging_paused_evse"]["reasons"] == ["NoEnergy"]
        await s.relays(False)
        await s.car_sees.wait_for(lambda m: m["cp_pwm_duty_cycle"] == 100, WAIT_S)

        await s.system.call("grid", "external_limits", "set_external_limits", value=external(None))
        await s.expect("ChargingResumed")
        await s.relays(True)


async def test_limits_expire_when_the_energy_manager_goes_quiet() -> None:
    async with sil(with_energy_manager=False) as s:
        await s.car("iec_wait_pwr_ready;draw_power_regulated 16,3")
        await s.expect("SessionStarted", "AuthRequired")
        await s.swipe()
        await s.expect("Authorized", "TransactionStarted", "PrepareCharging")
        limits = {"ac_max_current_A": {"value": 16, "source": "test"}}
        await s.system.call("evse", "energy_grid", "enforce_limits",
                            value={"uuid": "evse", "valid_for": 10, "limits_root_side": limits, "schedule": []})
        await s.expect("ChargingStarted")
        await s.relays(True)
        await s.advance(11)
        paused = await s.skip_to("ChargingPausedEVSE")
        assert paused["charging_paused_evse"]["reasons"] == ["NoEnergy"]
        await s.relays(False)


async def test_reservation_blocks_other_tokens_until_cancelled() -> None:
    async with sil() as s:
        assert await s.system.call("evse", "evse", "reserve", reservation_id=42) is True
        start = await s.skip_to("ReservationStart")
        assert start["reservation_start"] == {"reservation_id": 42}
        assert await s.system.call("evse", "evse", "reserve", reservation_id=43) is False
        await s.swipe("STRANGER")
        await s.auth_status.wait_for(lambda m: m["status"] == "Rejected", WAIT_S)
        await s.system.call("evse", "evse", "cancel_reservation")
        end = await s.skip_to("ReservationEnd")
        assert end["reservation_end"] == {"reservation_id": 42, "reason": "Cancelled"}
        await s.swipe("STRANGER")
        await s.expect("SessionStarted", "Authorized")


async def test_disable_shows_f_and_enable_takes_sessions_again() -> None:
    async with sil() as s:
        source = {"enable_source": "LocalAPI", "enable_state": "Disable", "enable_priority": 10}
        assert await s.system.call("evse", "evse", "enable_disable", connector_id=0, cmd_source=source) is False
        await s.expect("Disabled")
        await s.car_sees.wait_for(lambda m: m["cp_pwm_duty_cycle"] == 0, WAIT_S)
        await s.car("plugin")
        await s.board_events.wait_for(lambda e: e["event"] == "B", WAIT_S)
        source["enable_state"] = "Unassigned"
        assert await s.system.call("evse", "evse", "enable_disable", connector_id=0, cmd_source=source) is True
        await s.expect("Enabled", "SessionStarted", "AuthRequired")


async def test_meter_loss_pauses_charging_until_the_meter_is_back() -> None:
    async with sil() as s:
        await s.charging()
        lost = {"error_type": "powermeter/CommunicationFault", "sub_type": ""}
        await s.system.call("board", "ev_board_support", "inject_error", active=True, **lost)
        await s.evse_errors.wait_for(lambda e: e["type"] == "evse_manager/PowermeterLost", WAIT_S)
        paused = await s.skip_to("ChargingPausedEVSE")
        assert paused["charging_paused_evse"]["reasons"] == ["Error"]
        await s.relays(False)
        await s.system.call("board", "ev_board_support", "inject_error", active=False, **lost)
        await s.expect("ChargingResumed")
        assert ("evse_manager/PowermeterLost", "ClearedByModule") in error_types(s.evse_errors)


async def test_silent_meter_counts_as_lost() -> None:
    async with sil(evse={"powermeter_timeout_s": 5}) as s:
        await s.charging()
        s.system.instances["board"].meter_silent = True  # stops publishing, raises nothing
        await s.advance(6)
        await s.evse_errors.wait_for(lambda e: e["type"] == "evse_manager/PowermeterLost", WAIT_S)
        await s.skip_to("ChargingPausedEVSE")


async def test_car_drawing_too_much_raises_over_current_and_ends_the_transaction() -> None:
    async with sil(evse={"soft_over_current_timeout_ms": 7000}) as s:
        await s.car("iec_wait_pwr_ready;draw_power_fixed 32,3")
        await s.expect("SessionStarted", "AuthRequired")
        await s.swipe()
        await s.skip_to("ChargingStarted")
        grid = {"ac_max_current_A": {"value": 16, "source": "test"}}
        await s.system.call("grid", "external_limits", "set_external_limits", value={"schedule_import": [
            {"timestamp": "2020-01-01T00:00:00.000Z", "limits_to_root": grid, "limits_to_leaves": {}}],
            "schedule_export": []})
        await s.advance(15)
        error = await s.evse_errors.wait_for(lambda e: e["type"] == "evse_manager/MREC4OverCurrentFailure", WAIT_S)
        assert error["state"] == "Active"
        finished = await s.skip_to("TransactionFinished")
        assert finished["transaction_finished"]["reason"] == "OvercurrentFault"


async def test_bad_car_script_is_a_clear_error_and_the_car_keeps_working() -> None:
    async with sil() as s:
        with pytest.raises(HandlerError, match="unknown command 'fly'"):
            await s.system.call("car", "main", "execute_charging_session", value="plugin;fly 3")
        with pytest.raises(HandlerError, match="draw_power_fixed takes current_a phases"):
            await s.system.call("car", "main", "execute_charging_session", value="draw_power_fixed 16")
        await s.car("plugin")
        await s.expect("SessionStarted", "AuthRequired")


async def test_malformed_board_and_meter_values_are_dropped_without_disturbing_the_session() -> None:
    async with sil() as s:
        await s.charging()
        evse_before = s.system.instances["evse"]
        await s.system.publish_var("board", "board_support", "event", {"event": "Z"})
        await s.system.publish_var("board", "board_support", "event", {"what": "B"})
        await s.system.publish_var("board", "board_support", "capabilities", {"max_current_A_import": "lots"})
        await s.system.publish_var("board", "powermeter", "powermeter", {"timestamp": "now"})
        await s.settle()
        assert s.system.instances["evse"] is evse_before  # not crashed and restarted
        assert s.evse.charger.state == "Charging"
        assert s.evse.charger.available_current_a == 32
        await s.car("unplug")
        await s.expect("ChargingFinished", "TransactionFinished", "SessionFinished")


async def test_evse_restarted_by_the_runtime_mid_session_finds_the_car_and_opens_the_relays() -> None:
    async with sil() as s:
        await s.charging()
        crashed = s.system.instances["evse"]
        s.system.runtime.host.module_crashed(crashed, RuntimeError("simulated crash for the test"))
        await until(lambda: s.system.instances.get("evse") not in (None, crashed), what="EVSE restarted")
        restarted = s.system.instances["evse"]
        await until(lambda: hasattr(restarted, "charger"), what="restarted EVSE initialised")
        await s.advance(2)  # first meter value of the restarted EVSE
        await until(lambda: restarted.charger.started, what="restarted EVSE started")
        await s.skip_to("SessionStarted")
        await s.expect("AuthRequired")
        await s.relays(False)  # the new instance does not trust relays it did not close
        assert restarted.charger.facts.car_pilot == "C"


async def test_pilot_shorted_by_the_car_pauses_until_it_is_gone() -> None:
    async with sil() as s:
        await s.charging()
        await s.car("error_e")
        await s.board_errors.wait_for(lambda e: e["type"] == "evse_board_support/MREC14PilotFault", WAIT_S)
        await s.relays(False)
        paused = await s.skip_to("ChargingPausedEVSE")
        assert paused["charging_paused_evse"]["reasons"] == ["Error"]
        await s.car("draw_power_regulated 16,3")
        await s.skip_to("ChargingResumed")
        await s.relays(True)


async def test_wait_for_real_plugin_waits_for_someone_else_to_plug_in() -> None:
    async with sil() as s:
        await s.car("wait_for_real_plugin;draw_power_regulated 10,1")
        status = s.system.watch("car", "main", "status")
        await s.system.call("board", "ev_board_support", "set_cp_state", cp_state="B")  # "a real car"
        await status.wait_for(lambda v: v["command"].startswith("draw_power_regulated"), WAIT_S)
        await s.expect("SessionStarted", "AuthRequired")


async def test_free_charging_authorizes_every_car_itself() -> None:
    async with sil(evse={"disable_authentication": True}) as s:
        await s.car("iec_wait_pwr_ready;draw_power_regulated 16,3")
        events = await s.expect("SessionStarted", "AuthRequired", "Authorized", "TransactionStarted",
                                "PrepareCharging", "ChargingStarted")
        assert events[3]["transaction_started"]["id_tag"]["id_token"]["type"] == "NoAuthorization"
        await s.relays(True)


async def test_autocharge_token_from_the_evse_goes_through_auth() -> None:
    async with sil(evse={"autocharge_token": "00:11:22:33:44:55"}) as s:
        await s.car("iec_wait_pwr_ready;draw_power_regulated 16,3")
        await s.expect("SessionStarted", "AuthRequired", "Authorized", "TransactionStarted")
        used = await s.auth_status.wait_for(lambda m: m["status"] == "UsedToStart", WAIT_S)
        assert used["token"]["authorization_type"] == "Autocharge"
        await s.skip_to("ChargingStarted")


async def test_socket_cable_rating_caps_the_pwm() -> None:
    async with sil(board={"connector_type": "IEC62196Type2Socket", "cable_ampacity": "A_13"}) as s:
        await s.charging()
        assert s.car_sees.latest["cp_pwm_duty_cycle"] == pytest.approx(13 / 0.6, abs=0.01)
        assert s.car_sees.latest["proximity_pilot"] == {"ampacity": "A_13"}
        assert s.evse.charger.available_current_a == 13


async def test_meter_refusing_to_start_its_transaction_blocks_charging_for_the_session() -> None:
    async with sil(board={"meter_transaction_start": "UNEXPECTED_ERROR"}) as s:
        await s.car("iec_wait_pwr_ready;draw_power_regulated 16,3")
        await s.expect("SessionStarted", "AuthRequired")
        await s.swipe()
        error = await s.evse_errors.wait_for(
            lambda e: e["type"] == "evse_manager/PowermeterTransactionStartFailed", WAIT_S)
        assert "simulated signing failure" in error["message"]
        await until(lambda: s.evse.charger.state == "ChargingPausedEVSE", what="paused by the error")
        await until(lambda: not s.system.instances["board"].port.relays_closed(), what="relays open")
        await s.car("unplug")
        await s.skip_to("SessionFinished")
        await s.evse_errors.wait_for(lambda e: e["type"] == "evse_manager/PowermeterTransactionStartFailed"
                                     and e["state"] == "ClearedByModule", WAIT_S)
