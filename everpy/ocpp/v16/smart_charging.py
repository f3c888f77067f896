"""Smart Charging profile of OCPP 1.6: charging profiles, the composite schedule, and its enforcement.

The math (profiles compiled to periods, the composite of a connector, what is applied to the EVSE and what
is reported) is version-neutral and lives in :mod:`everpy.ocpp.charging_profiles`; this block reads 1.6's
fields into it (ChargePointMaxProfile is the station maximum, a connector is an EVSE there). Why the
reported composite holds the station's maximum where no profile limits: OCPP 1.6 §5.7 defines the reported
schedule as "the result of the calculation of all active schedules and possible local limits present in
the Charge Point", and the conf's chargingSchedule is "the energy consumption over time" (EVerest's libocpp
does the same, CompositeScheduleDefaultLimitAmps). GetCompositeSchedule computes at most
:data:`MAX_COMPOSITE_DURATION_S` (a longer request is answered for that span, and
``chargingSchedule.duration`` says so).

Range, not just schema: SetChargingProfile (and RemoteStartTransaction's profile) answer Rejected for
anything the station cannot compute with (see :func:`compile_profile` and :meth:`SmartCharging.check`),
never an exception. Persisted profiles go through the same structural checks when read; a record that
fails is quarantined and removed, and the others keep working.
"""

from __future__ import annotations

import math
from typing import Any

from everpy.ocpp.blocks import BlockContext, handles
from everpy.ocpp.charging_profiles import (
    DAY,
    MAX_COMPOSITE_DURATION_S,
    MAX_LIMIT_A,
    MAX_LIMIT_W,
    STATION_MAX_CURRENT_A,
    STATION_MAX_PHASES,
    UNITS,
    InvalidProfile,
    LimitApplier,
    Profile,
    Role,
    compile_schedule,
    identify,
    is_int,
    kind_of,
    reported,
    validity,
)
from everpy.ocpp.charging_profiles import composite as compute_composite
from everpy.ocpp.rpc import Reply
from everpy.ocpp.v16.configuration import Configuration
from everpy.ocpp.v16.connectors import Connectors
from everpy.ocpp.v16.transactions import Started, Transactions
from everpy.ocpp.values import rfc3339

__all__ = ["DAY", "KIND", "MAX_COMPOSITE_DURATION_S", "MAX_LIMIT_A", "MAX_LIMIT_W", "STATION_MAX_CURRENT_A",
           "STATION_MAX_PHASES", "InvalidProfile", "SmartCharging", "compile_profile"]

KIND = "charging_profile"
ROLES = {"ChargePointMaxProfile": Role.STATION_MAX, "TxDefaultProfile": Role.TX_DEFAULT, "TxProfile": Role.TX}


def compile_profile(connector_id: Any, raw: Any) -> Profile:
    """The profile as the station computes with it; InvalidProfile for anything out of range or of the
    wrong type. These checks do not depend on the configuration (see SmartCharging.check for those)."""
    profile_id, stack_level, role = identify("connectorId", connector_id, raw, "chargingProfileId", ROLES)
    kind, recurrence = kind_of(raw)
    if role is Role.STATION_MAX and connector_id != 0:
        raise InvalidProfile("a ChargePointMaxProfile is only for connector 0")
    if role is Role.TX and connector_id == 0:
        raise InvalidProfile("a TxProfile is only for a connector, not 0")
    valid_from, valid_to = validity(raw)
    transaction_id = raw.get("transactionId")
    if transaction_id is not None and not is_int(transaction_id):
        raise InvalidProfile(f"transactionId {transaction_id!r} is not an integer")
    schedule = compile_schedule(raw.get("chargingSchedule"))
    start = schedule.start
    if kind == "Absolute" and start is None:
        if valid_from is None:
            raise InvalidProfile("an Absolute profile needs startSchedule (or validFrom)")
        start = valid_from
    return Profile(profile_id, connector_id, role, stack_level, kind, recurrence, valid_from, valid_to, start,
                   schedule.duration, schedule.unit, schedule.periods, transaction_id)


class SmartCharging:
    def __init__(self, ctx: BlockContext[Configuration], connectors: Connectors, transactions: Transactions) -> None:
        self.ctx = ctx
        self.connectors = connectors
        self.transactions = transactions
        transactions.started.subscribe(self.transaction_started)
        transactions.ended.subscribe(self.transaction_ended)
        self._tx_start: dict[int, float] = {}
        self._pending_tx_profile: dict[int, dict[str, Any]] = {}
        self._applier = LimitApplier(ctx.station, ctx.clock, connectors.ids, self.composite)

    def cancel_timers(self) -> None:
        self._applier.cancel_timers()

    def _load(self) -> dict[int, tuple[dict[str, Any], Profile]]:
        """The installed profiles that pass compile_profile; every other record is quarantined and removed
        (a corrupt or hand-edited store must not stop the others, or the whole service)."""
        loaded: dict[int, tuple[dict[str, Any], Profile]] = {}
        for pid, data in self.ctx.store.records(KIND).items():
            try:
                profile = compile_profile(data.get("connectorId"), data.get("profile"))
                if profile.id != pid:
                    raise InvalidProfile(f"chargingProfileId {profile.id} is stored as {pid}")
            except InvalidProfile as bad:
                self.ctx.store.drop_record(KIND, pid, data, str(bad))
                continue
            loaded[pid] = (data, profile)
        return loaded

    def profiles(self) -> dict[int, dict[str, Any]]:
        """id -> {"connectorId": n, "profile": csChargingProfiles}, the usable ones only."""
        return {pid: data for pid, (data, _) in self._load().items()}

    # -- installing -------------------------------------------------------------------------------------
    def check(self, connector_id: Any, raw: Any, *, in_transaction: bool) -> Profile:
        """The profile if this station accepts it on that connector now, else InvalidProfile. With
        in_transaction=False (RemoteStartTransaction) a TxProfile is for the transaction about to start."""
        profile = compile_profile(connector_id, raw)
        config = self.ctx.config
        if connector_id != 0 and connector_id not in self.connectors:
            raise InvalidProfile(f"connector {connector_id} does not exist")
        if profile.stack_level > config.int("ChargeProfileMaxStackLevel"):
            raise InvalidProfile(f"stackLevel {profile.stack_level} is above ChargeProfileMaxStackLevel")
        if len(profile.periods) > config.int("ChargingScheduleMaxPeriods"):
            raise InvalidProfile(f"{len(profile.periods)} periods are more than ChargingScheduleMaxPeriods")
        if UNITS[profile.unit] not in config.csl("ChargingScheduleAllowedChargingRateUnit"):
            raise InvalidProfile(f"unit {profile.unit} is not in ChargingScheduleAllowedChargingRateUnit")
        connector = self.connectors.get(connector_id)
        running = None if connector is None else self.transactions.transaction_id(connector)
        if profile.role is Role.TX and in_transaction and (connector is None or connector.transaction is None):
            raise InvalidProfile("a TxProfile needs a transaction on the connector")
        if profile.transaction_id is not None and (not in_transaction or profile.transaction_id != running):
            raise InvalidProfile(f"transactionId {profile.transaction_id} is not the connector's transaction")
        return profile

    def _install(self, connector_id: int, profile: dict[str, Any]) -> bool:
        existing = self.profiles()
        replaced = [pid for pid, rec in existing.items()
                    if pid == profile["chargingProfileId"]
                    or (rec["connectorId"] == connector_id
                        and rec["profile"]["stackLevel"] == profile["stackLevel"]
                        and rec["profile"]["chargingProfilePurpose"] == profile["chargingProfilePurpose"])]
        if len(existing) - len(replaced) >= self.ctx.config.int("MaxChargingProfilesInstalled"):
            return False
        with self.ctx.store.atomic():
            for pid in replaced:
                self.ctx.store.remove_record(KIND, pid)
            self.ctx.store.put_record(KIND, profile["chargingProfileId"], {"connectorId": connector_id,
                                                                          "profile": profile})
        self.ctx.log.info("charging profile %d installed on connector %d", profile["chargingProfileId"], connector_id)
        return True

    @handles("SetChargingProfile")
    async def on_set_charging_profile(self, payload: dict[str, Any]) -> Reply:
        connector_id, raw = payload.get("connectorId"), payload.get("csChargingProfiles")
        try:
            self.check(connector_id, raw, in_transaction=True)
        except InvalidProfile as bad:
            self.ctx.log.warning("SetChargingProfile on connector %r rejected: %s", connector_id, bad)
            return Reply({"status": "Rejected"})
        assert isinstance(raw, dict) and isinstance(connector_id, int)
        if not self._install(connector_id, raw):
            return Reply({"status": "Rejected"})
        return Reply({"status": "Accepted"}, self.apply)

    def accept_remote_start_profile(self, connector_id: int | None, profile: dict[str, Any]) -> bool:
        """RemoteStartTransaction.chargingProfile: a TxProfile kept until the transaction starts."""
        if not isinstance(profile, dict) or profile.get("chargingProfilePurpose") != "TxProfile" \
                or connector_id is None:
            return False
        try:
            self.check(connector_id, profile, in_transaction=False)
        except InvalidProfile as bad:
            self.ctx.log.warning("RemoteStartTransaction's charging profile rejected: %s", bad)
            return False
        self._pending_tx_profile[connector_id] = profile
        return True

    @handles("ClearChargingProfile")
    async def on_clear_charging_profile(self, payload: dict[str, Any]) -> Reply:
        matching = [pid for pid, rec in self.profiles().items() if self._matches(pid, rec, payload)]
        if not matching:
            return Reply({"status": "Unknown"})
        with self.ctx.store.atomic():
            for pid in matching:
                self.ctx.store.remove_record(KIND, pid)
        return Reply({"status": "Accepted"}, self.apply)

    @staticmethod
    def _matches(pid: int, record: dict[str, Any], criteria: dict[str, Any]) -> bool:
        if "id" in criteria:
            return pid == criteria["id"]
        profile = record["profile"]
        return (criteria.get("connectorId") in (None, record["connectorId"])
                and criteria.get("chargingProfilePurpose") in (None, profile["chargingProfilePurpose"])
                and criteria.get("stackLevel") in (None, profile["stackLevel"]))

    # -- transactions -----------------------------------------------------------------------------------
    def transaction_started(self, started: Started) -> None:
        connector_id = started.connector_id
        self._tx_start[connector_id] = started.start_time
        pending = self._pending_tx_profile.pop(connector_id, None)
        if pending is not None:
            self._install(connector_id, pending)
        self._schedule_apply()

    def transaction_ended(self, connector_id: int) -> None:
        self._tx_start.pop(connector_id, None)
        tx_profiles = [pid for pid, rec in self.profiles().items() if rec["connectorId"] == connector_id
                       and rec["profile"]["chargingProfilePurpose"] == "TxProfile"]
        with self.ctx.store.atomic():
            for pid in tx_profiles:
                self.ctx.store.remove_record(KIND, pid)
        self._schedule_apply()

    def _schedule_apply(self) -> None:
        self.ctx.jobs.spawn(self.apply())

    # -- composite schedule -----------------------------------------------------------------------------
    def composite(self, connector_id: int, begin: float, duration: float, unit: str) -> list[dict[str, Any]]:
        """The connector's composite (see everpy.ocpp.charging_profiles.composite); 0 = the station."""
        return compute_composite([profile for _, profile in self._load().values()], connector_id, begin, duration,
                                 unit, self._tx_start.get(connector_id))

    @handles("GetCompositeSchedule")
    async def on_get_composite_schedule(self, payload: dict[str, Any]) -> Reply:
        connector_id, duration = payload.get("connectorId"), payload.get("duration")
        unit = payload.get("chargingRateUnit", "A")
        if not is_int(connector_id) or (connector_id != 0 and connector_id not in self.connectors) \
                or not is_int(duration) or duration < 0 or not isinstance(unit, str) or unit not in UNITS:
            return Reply({"status": "Rejected"})
        duration = min(duration, MAX_COMPOSITE_DURATION_S)
        now = math.floor(self.ctx.clock.time())
        periods = reported(self.composite(connector_id, now, duration, unit), unit)
        return Reply({"status": "Accepted", "connectorId": connector_id, "scheduleStart": rfc3339(now),
                      "chargingSchedule": {"duration": duration, "startSchedule": rfc3339(now),
                                           "chargingRateUnit": unit, "chargingSchedulePeriod": periods}})

    async def apply(self) -> None:
        """Send the composite schedule of every connector to energy management and publish it."""
        await self._applier.apply()
