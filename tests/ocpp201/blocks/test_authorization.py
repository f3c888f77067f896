"""Functional blocks C (authorization) and D (local authorization list) of OCPP 2.0.1 alone, on the fake
context (real store and device model, FakeSender, FakeStation, FakeClock).

The OCTT list of the repository (tests/ocpp201/octt-cases.tsv) has no D cases; the D tests name the use
cases and requirements of OCPP 2.0.1 Part 2 they check (D01, D02).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from everpy.ocpp.rpc import CallTimeout, OcppCallError, Reply
from everpy.ocpp.v201.auth_repository import CACHE_TABLE, LIST_TABLE, VERSION_TABLE
from everpy.ocpp.v201.authorization import Authorization
from everpy.ocpp.v201.dialect import DIALECT
from everpy.ocpp.v201.variables.auth import LOCAL_LIST_ENTRIES
from everpy.ocpp.values import rfc3339

from .fakes import Fixture, block_context

RFID = {"idToken": "04A1B2C3", "type": "ISO14443"}
OTHER = {"idToken": "DEADBEEF", "type": "ISO14443"}
GROUP = {"idToken": "FLEET-7", "type": "Central"}
PRE_AUTHORIZE = {"AuthCtrlr.LocalPreAuthorize": "true"}


def provided(token: dict[str, Any] = RFID) -> dict[str, Any]:
    return {"id_token": {"value": token["idToken"], "type": token["type"]}, "authorization_type": "RFID"}


def setup(tmp_path: Path, variables: dict[str, str] | None = None, evse_ids: list[int] | None = None,
          fixture: Fixture | None = None) -> tuple[Fixture, Authorization]:
    """A fresh block; with `fixture`, one on that fixture's store (what a restart keeps)."""
    fx = block_context(tmp_path, evse_ids, variables, store=fixture.store if fixture else None)
    return fx, Authorization(fx.ctx, fx.evses)


def answer(fx: Fixture, status: str, **more: Any) -> None:
    fx.sender.answers["Authorize"] = {"idTokenInfo": {"status": status, **more}}


async def validate(block: Authorization, token: dict[str, Any] = RFID) -> dict[str, Any]:
    return await block.validate_token(provided(token))


def checked(action: str, reply: Reply) -> dict[str, Any]:
    DIALECT.check(action, reply.payload, response=True)
    return reply.payload


def full_list(version: int, *entries: dict[str, Any], update: str = "Full") -> dict[str, Any]:
    payload = {"versionNumber": version, "updateType": update, "localAuthorizationList": list(entries)}
    DIALECT.check("SendLocalList", payload, response=False)
    return payload


def entry(token: dict[str, Any], status: str | None = "Accepted", **more: Any) -> dict[str, Any]:
    return {"idToken": token} if status is None else {"idToken": token, "idTokenInfo": {"status": status, **more}}


def iso(fx: Fixture, seconds_from_now: float) -> str:
    return rfc3339(fx.clock.time() + seconds_from_now)


# -- C: Authorize to the CSMS ----------------------------------------------------------------------------
@pytest.mark.parametrize("status", ["Invalid", "Unknown", "Blocked", "Expired", "NoCredit", "NotAtThisTime"])
async def test_the_csmss_verdict_is_the_validation_result(tmp_path, status):
    """TC_C_02_CS (Invalid/Unknown), TC_C_06_CS (Blocked), TC_C_07_CS (Expired), TC_C_56_CS (Unknown):
    the token goes to the CSMS in an AuthorizeRequest and its status is what Auth is told."""
    fx, block = setup(tmp_path)
    answer(fx, status)
    assert await validate(block) == {"authorization_status": status}
    assert fx.sender.of("Authorize") == [{"idToken": RFID}]
    DIALECT.check("Authorize", fx.sender.of("Authorize")[0], response=False)


async def test_accepted_with_group_expiry_and_evses(tmp_path):
    """TC_C_39_CS: the groupIdToken reaches Auth as the parent id token (a token of the same group may stop
    the transaction); cacheExpiryDateTime as expiry; evseId as the EVSEs the token may use, without ids this
    station does not have."""
    fx, block = setup(tmp_path, evse_ids=[1, 2])
    expiry = iso(fx, 3600)
    answer(fx, "Accepted", groupIdToken=GROUP, cacheExpiryDateTime=expiry, evseId=[2, 7],
           personalMessage={"format": "UTF8", "content": "hi"})
    assert await validate(block) == {"authorization_status": "Accepted", "expiry_time": expiry,
                                     "parent_id_token": {"value": "FLEET-7", "type": "Central"}, "evse_ids": [2]}


async def test_master_pass_may_stop_but_never_start(tmp_path):
    """TC_C_45_CS: a token of the MasterPassGroupId group is valid on no EVSE (it cannot start a
    transaction) and names its group, which is how Auth knows it may stop the running ones (C16)."""
    fx, block = setup(tmp_path, {"AuthCtrlr.MasterPassGroupId": "fleet-7"})
    answer(fx, "Accepted", groupIdToken=GROUP)
    result = await validate(block)
    assert result["authorization_status"] == "Accepted"
    assert result["evse_ids"] == []
    assert result["parent_id_token"] == {"value": "FLEET-7", "type": "Central"}


async def test_a_group_that_is_not_the_master_pass_may_start(tmp_path):
    """TC_C_42_CS: a token of another group than the master pass is an ordinary one."""
    fx, block = setup(tmp_path, {"AuthCtrlr.MasterPassGroupId": "MASTER"})
    answer(fx, "Accepted", groupIdToken=GROUP)
    assert "evse_ids" not in await validate(block)


async def test_authorization_disabled_accepts_without_asking(tmp_path):
    """AuthCtrlr.Enabled false (C01): every token is accepted and nothing is sent; a NoAuthorization token
    is never sent either."""
    fx, block = setup(tmp_path, {"AuthCtrlr.Enabled": "false"})
    assert await validate(block) == {"authorization_status": "Accepted"}
    fx, block = setup(tmp_path / "b")
    assert await validate(block, {"idToken": "", "type": "NoAuthorization"}) == {"authorization_status": "Accepted"}
    assert fx.sender.of("Authorize") == []


async def test_a_callerror_answer_is_invalid_and_not_cached(tmp_path):
    fx, block = setup(tmp_path)
    fx.sender.answers["Authorize"] = OcppCallError("InternalError", "down")
    assert await validate(block) == {"authorization_status": "Invalid"}
    assert block.repository.cache_count() == 0


@pytest.mark.parametrize("info", [
    {"status": "Accepted", "evseId": [0]},
    {"status": "Accepted", "chargingPriority": 10},
    {"status": "Accepted", "cacheExpiryDateTime": "2026-01-01T00:00:00"},  # no offset
])
async def test_an_answer_out_of_range_is_not_used(tmp_path, info):
    """Hostile input: values the schema leaves open but the spec does not allow are no verdict."""
    fx, block = setup(tmp_path)
    fx.sender.answers["Authorize"] = {"idTokenInfo": info}
    assert await validate(block) == {"authorization_status": "Invalid"}
    assert block.repository.cache_count() == 0


@pytest.mark.parametrize("token", [
    {"id_token": {"value": "x" * 37, "type": "ISO14443"}, "authorization_type": "RFID"},
    {"id_token": {"value": "A", "type": "Barcode"}, "authorization_type": "RFID"},
    {"id_token": "A", "authorization_type": "RFID"},
    {},
])
async def test_a_malformed_token_from_the_bus_is_invalid(tmp_path, token):
    fx, block = setup(tmp_path)
    assert await block.validate_token(token) == {"authorization_status": "Invalid"}
    assert fx.sender.of("Authorize") == []


# -- C10-C12: the authorization cache ----------------------------------------------------------------------
async def test_cached_accepted_token_starts_at_once_with_local_pre_authorize(tmp_path):
    """TC_C_08_CS, TC_C_33_CS: the AuthorizeResponse is cached; with LocalPreAuthorize the next
    presentation is accepted from the cache without an AuthorizeRequest."""
    fx, block = setup(tmp_path, PRE_AUTHORIZE)
    answer(fx, "Accepted")
    await validate(block)
    fx.sender.answers["Authorize"] = OcppCallError("InternalError", "must not be asked")
    assert await validate(block) == {"authorization_status": "Accepted"}
    assert len(fx.sender.of("Authorize")) == 1


async def test_without_local_pre_authorize_the_csms_is_asked_again(tmp_path):
    """TC_C_36_CS: LocalPreAuthorize false: a cached token is still authorized at the CSMS, whose new
    answer replaces the cached one."""
    fx, block = setup(tmp_path)
    answer(fx, "Accepted")
    await validate(block)
    answer(fx, "Blocked")
    assert await validate(block) == {"authorization_status": "Blocked"}
    assert len(fx.sender.of("Authorize")) == 2
    entry_ = block.repository.cache_entry(RFID["idToken"], RFID["type"])
    assert entry_ is not None and entry_.info["status"] == "Blocked"


@pytest.mark.parametrize(("cached", "now"), [("Invalid", "Accepted"), ("Invalid", "Invalid"),
                                             ("Blocked", "Accepted"), ("Expired", "Accepted")])
async def test_a_cached_refusal_is_asked_again(tmp_path, cached, now):
    """TC_C_09_CS (Invalid, still not Accepted), TC_C_10_CS (Blocked), TC_C_11_CS (Expired), TC_C_12_CS
    (Invalid, now Accepted): a token the cache holds as not Accepted is authorized at the CSMS."""
    fx, block = setup(tmp_path, PRE_AUTHORIZE)
    block.token_info(RFID, {"status": cached})
    answer(fx, now)
    assert await validate(block) == {"authorization_status": now}
    assert len(fx.sender.of("Authorize")) == 1


async def test_cache_expiry_date_makes_an_entry_expired(tmp_path):
    """TC_C_11_CS: once cacheExpiryDateTime passed, a cached Accepted counts as Expired (C10.FR.03): online
    it is asked again, offline it is refused."""
    fx, block = setup(tmp_path, PRE_AUTHORIZE)
    block.token_info(RFID, {"status": "Accepted", "cacheExpiryDateTime": iso(fx, 60)})
    await fx.clock.advance(61)
    fx.sender.online = False
    assert await validate(block) == {"authorization_status": "Expired", "expiry_time": iso(fx, -1)}
    fx.sender.online = True
    answer(fx, "Accepted")
    assert (await validate(block))["authorization_status"] == "Accepted"
    assert len(fx.sender.of("Authorize")) == 1


async def test_disable_post_authorize_refuses_a_cached_refusal_at_once(tmp_path):
    """TC_C_57_CS: AuthCacheCtrlr.DisablePostAuthorize: a cached Blocked token is refused without an
    AuthorizeRequest."""
    fx, block = setup(tmp_path, {**PRE_AUTHORIZE, "AuthCacheCtrlr.DisablePostAuthorize": "true"})
    block.token_info(RFID, {"status": "Blocked"})
    assert await validate(block) == {"authorization_status": "Blocked"}
    assert fx.sender.of("Authorize") == []


async def test_transaction_event_answer_updates_the_cache(tmp_path):
    """TC_C_34_CS: an idTokenInfo from a TransactionEventResponse (token_info) updates the cache; a bad one
    is not stored."""
    fx, block = setup(tmp_path, PRE_AUTHORIZE)
    block.token_info(RFID, {"status": "Accepted", "groupIdToken": GROUP})
    block.token_info(OTHER, {"status": "Accepted", "evseId": [-1]})
    block.token_info({"idToken": "A", "type": "Nonsense"}, {"status": "Accepted"})
    assert await validate(block) == {"authorization_status": "Accepted",
                                     "parent_id_token": {"value": "FLEET-7", "type": "Central"}}
    assert fx.sender.of("Authorize") == []
    assert block.repository.cache_count() == 1


async def test_the_cache_survives_a_restart(tmp_path):
    """TC_C_32_CS: the cache is persistent over a reboot."""
    fx, block = setup(tmp_path, PRE_AUTHORIZE)
    answer(fx, "Accepted", groupIdToken=GROUP)
    await validate(block)
    fx2, block2 = setup(tmp_path, PRE_AUTHORIZE, fixture=fx)
    assert (await validate(block2))["parent_id_token"]["value"] == "FLEET-7"
    assert fx2.sender.of("Authorize") == []


async def test_group_through_the_cache(tmp_path):
    """TC_C_41_CS (group with the cache: the parent comes from the cached entry), TC_C_44_CS (a cached
    refusal of a group member is not accepted offline)."""
    fx, block = setup(tmp_path, PRE_AUTHORIZE)
    block.token_info(RFID, {"status": "Accepted", "groupIdToken": GROUP})
    block.token_info(OTHER, {"status": "Invalid", "groupIdToken": GROUP})
    assert (await validate(block))["parent_id_token"] == {"value": "FLEET-7", "type": "Central"}
    fx.sender.online = False
    assert (await validate(block, OTHER))["authorization_status"] == "Invalid"


async def test_lifetime_since_last_use_drops_an_entry(tmp_path):
    """TC_C_46_CS: an entry not used for AuthCacheCtrlr.LifeTime seconds is gone: the CSMS is asked again.
    A use renews it."""
    fx, block = setup(tmp_path, {**PRE_AUTHORIZE, "AuthCacheCtrlr.LifeTime": "100"})
    answer(fx, "Accepted")
    await validate(block)
    await fx.clock.advance(90)
    await validate(block)  # from the cache: renews the entry
    await fx.clock.advance(90)
    await validate(block)
    assert len(fx.sender.of("Authorize")) == 1
    await fx.clock.advance(101)
    await validate(block)
    assert len(fx.sender.of("Authorize")) == 2


async def test_a_full_cache_drops_the_least_recently_used(tmp_path):
    """AuthCacheCtrlr.Storage with the LRU policy."""
    fx, block = setup(tmp_path, {**PRE_AUTHORIZE, "AuthCacheCtrlr.Storage": "2"})
    third = {"idToken": "THIRD", "type": "KeyCode"}
    block.token_info(RFID, {"status": "Accepted"})
    block.token_info(OTHER, {"status": "Accepted"})
    await validate(block)  # RFID used last: OTHER is the least recently used
    block.token_info(third, {"status": "Accepted"})
    repository = block.repository
    assert repository.cache_count() == 2
    assert repository.cache_entry("DEADBEEF", "ISO14443") is None
    assert repository.cache_entry("04a1b2c3", "ISO14443") is not None  # case-insensitive


async def test_clear_cache(tmp_path):
    """TC_C_37_CS: ClearCache empties the cache (the next token goes to the CSMS); TC_C_38_CS: with the
    cache disabled it is Rejected."""
    fx, block = setup(tmp_path, PRE_AUTHORIZE)
    block.token_info(RFID, {"status": "Accepted"})
    assert checked("ClearCache", await block.on_clear_cache({})) == {"status": "Accepted"}
    answer(fx, "Accepted")
    await validate(block)
    assert len(fx.sender.of("Authorize")) == 1
    fx2, block2 = setup(tmp_path / "b", {"AuthCacheCtrlr.Enabled": "false"})
    assert checked("ClearCache", await block2.on_clear_cache({})) == {"status": "Rejected"}


async def test_a_disabled_cache_is_neither_read_nor_written(tmp_path):
    fx, block = setup(tmp_path, {**PRE_AUTHORIZE, "AuthCacheCtrlr.Enabled": "false"})
    answer(fx, "Accepted")
    await validate(block)
    await validate(block)
    assert block.repository.cache_count() == 0
    assert len(fx.sender.of("Authorize")) == 2


async def test_forget_removes_a_token_for_customer_information(tmp_path):
    fx, block = setup(tmp_path)
    block.token_info(RFID, {"status": "Accepted"})
    assert block.forget({"idToken": "04a1b2c3", "type": "ISO14443"}) is True
    assert block.forget(RFID) is False
    assert block.forget({"idToken": 5, "type": "ISO14443"}) is False


# -- offline rules (C15) and DisableRemoteAuthorization ------------------------------------------------
async def test_offline_known_tokens_follow_local_authorize_offline(tmp_path):
    """LocalAuthorizeOffline: offline, a cached Accepted token is accepted; without it, it is not."""
    fx, block = setup(tmp_path)
    block.token_info(RFID, {"status": "Accepted"})
    fx.sender.online = False
    assert await validate(block) == {"authorization_status": "Accepted"}
    fx2, block2 = setup(tmp_path / "b", {"AuthCtrlr.LocalAuthorizeOffline": "false"})
    block2.token_info(RFID, {"status": "Accepted"})
    block2.token_info(OTHER, {"status": "Blocked"})
    fx2.sender.online = False
    assert await validate(block2) == {"authorization_status": "Unknown"}
    assert await validate(block2, OTHER) == {"authorization_status": "Blocked"}  # a refusal still counts
    assert fx.sender.of("Authorize") == fx2.sender.of("Authorize") == []


async def test_offline_unknown_token(tmp_path):
    """TC_C_26_CS: offline, an unknown token is accepted with OfflineTxForUnknownIdEnabled, and Unknown
    without it; a token known to be refused is never accepted offline."""
    fx, block = setup(tmp_path, {"AuthCtrlr.OfflineTxForUnknownIdEnabled": "true"})
    fx.sender.online = False
    assert await validate(block) == {"authorization_status": "Accepted"}
    block.token_info(OTHER, {"status": "Blocked"})
    assert await validate(block, OTHER) == {"authorization_status": "Blocked"}
    fx2, block2 = setup(tmp_path / "b")
    fx2.sender.online = False
    assert await validate(block2) == {"authorization_status": "Unknown"}


async def test_no_answer_counts_as_offline(tmp_path):
    """An Authorize that times out is decided by the offline rules."""
    fx, block = setup(tmp_path, {"AuthCtrlr.OfflineTxForUnknownIdEnabled": "true"})

    async def timeout(action: str, payload: dict[str, Any]) -> dict[str, Any]:
        fx.sender.sent.append((action, payload))
        raise CallTimeout("no answer")

    fx.sender.call = timeout
    assert await validate(block) == {"authorization_status": "Accepted"}
    assert len(fx.sender.of("Authorize")) == 1


async def test_disable_remote_authorization_uses_only_local_data(tmp_path):
    """AuthCtrlr.DisableRemoteAuthorization: no AuthorizeRequest; the cache and local list decide, an
    unknown token is Unknown."""
    fx, block = setup(tmp_path, {"AuthCtrlr.DisableRemoteAuthorization": "true"})
    block.token_info(RFID, {"status": "Accepted"})
    block.token_info(OTHER, {"status": "Blocked"})
    assert await validate(block) == {"authorization_status": "Accepted"}
    assert await validate(block, OTHER) == {"authorization_status": "Blocked"}
    assert await validate(block, {"idToken": "NEW", "type": "KeyCode"}) == {"authorization_status": "Unknown"}
    assert fx.sender.of("Authorize") == []


# -- hostile rows on disk ----------------------------------------------------------------------------------
@pytest.mark.parametrize("row", [
    ("04A1B2C3", "ISO14443", "not json", 0.0, 1),
    ("04A1B2C3", "ISO14443", json.dumps({"status": "Maybe"}), 0.0, 1),
    ("04A1B2C3", "ISO14443", json.dumps({"status": "Accepted", "evseId": ["1"]}), 0.0, 1),
    ("04A1B2C3", "ISO14443", json.dumps({"status": "Accepted"}), "yesterday", 1),
    ("04A1B2C3", "ISO14443", json.dumps([1]), 0.0, 1),
])
async def test_a_bad_cache_row_is_quarantined_and_the_csms_asked(tmp_path, row):
    fx, block = setup(tmp_path, PRE_AUTHORIZE)
    fx.store.write(f"INSERT INTO {CACHE_TABLE} VALUES (?, ?, ?, ?, ?)",
                   (row[0], row[1], row[2], fx.clock.time() if row[3] == 0.0 else row[3], row[4]))
    answer(fx, "Accepted")
    assert await validate(block) == {"authorization_status": "Accepted"}
    assert len(fx.sender.of("Authorize")) == 1
    assert [q.source for q in fx.store.quarantined()] == [f"2.0.1 {CACHE_TABLE}"]


async def test_bad_local_list_rows_are_quarantined_at_start(tmp_path):
    """A persisted list entry or version that no longer fits is quarantined; Entries counts the good ones."""
    fx, _ = setup(tmp_path)
    rows = (("GOOD", {"status": "Accepted"}), ("BAD", {"status": "Fine"}), ("X" * 40, {"status": "Accepted"}))
    for value, info in rows:
        fx.store.write(f"INSERT INTO {LIST_TABLE} VALUES (?, ?, ?)", (value, "KeyCode", json.dumps(info)))
    fx.store.write(f"INSERT INTO {VERSION_TABLE} VALUES (0, ?)", (-4,))
    fx2, block2 = setup(tmp_path, fixture=fx)
    assert fx2.model.int(LOCAL_LIST_ENTRIES) == 1
    assert checked("GetLocalListVersion", await block2.on_get_local_list_version({})) == {"versionNumber": 0}
    assert len(fx2.store.quarantined()) == 3


# -- D: the local authorization list -------------------------------------------------------------------------
async def send(block: Authorization, payload: dict[str, Any]) -> str:
    return str(checked("SendLocalList", await block.on_send_local_list(payload))["status"])


async def version(block: Authorization) -> int:
    return int(checked("GetLocalListVersion", await block.on_get_local_list_version({}))["versionNumber"])


async def test_full_list_is_installed_and_used(tmp_path):
    """D01 (Full update, D01.FR.01), D02 (GetLocalListVersion): the list and its version are kept,
    LocalAuthListCtrlr.Entries counts it, and with LocalPreAuthorize its tokens start without an
    AuthorizeRequest (C14) and are not put in the cache."""
    fx, block = setup(tmp_path, PRE_AUTHORIZE)
    assert await version(block) == 0
    assert await send(block, full_list(3, entry(RFID, groupIdToken=GROUP), entry(OTHER, "Blocked"))) == "Accepted"
    assert await version(block) == 3
    assert fx.model.int(LOCAL_LIST_ENTRIES) == 2
    assert await validate(block) == {"authorization_status": "Accepted",
                                     "parent_id_token": {"value": "FLEET-7", "type": "Central"}}
    assert fx.sender.of("Authorize") == []
    answer(fx, "Accepted")
    assert await validate(block, OTHER) == {"authorization_status": "Accepted"}  # post-authorized (C14.FR.03)
    assert block.repository.cache_count() == 0


async def test_a_full_list_replaces_the_old_one_and_an_empty_one_clears_it(tmp_path):
    """D01: Full replaces the whole list; a Full update without entries empties it."""
    fx, block = setup(tmp_path)
    await send(block, full_list(1, entry(RFID), entry(OTHER)))
    assert await send(block, full_list(2, entry(OTHER))) == "Accepted"
    assert block.repository.list_info(RFID["idToken"], RFID["type"]) is None
    assert await send(block, {"versionNumber": 3, "updateType": "Full"}) == "Accepted"
    assert fx.model.int(LOCAL_LIST_ENTRIES) == 0
    assert await version(block) == 3


async def test_differential_update_adds_changes_and_removes(tmp_path):
    """D01 (Differential): an entry with idTokenInfo is added or replaced, one without removed; an empty
    differential update changes only the version (D01.FR.05)."""
    fx, block = setup(tmp_path)
    await send(block, full_list(1, entry(RFID)))
    third = {"idToken": "THIRD", "type": "KeyCode"}
    assert await send(block, full_list(2, entry(OTHER), entry({"idToken": "04a1b2c3", "type": "ISO14443"}, None),
                                       update="Differential")) == "Accepted"
    assert block.repository.list_info(RFID["idToken"], RFID["type"]) is None
    assert await send(block, full_list(3, entry(OTHER, "Blocked"), entry(third), update="Differential")) == "Accepted"
    info = block.repository.list_info(OTHER["idToken"], OTHER["type"])
    assert info is not None and info["status"] == "Blocked"
    assert fx.model.int(LOCAL_LIST_ENTRIES) == 2
    assert await send(block, {"versionNumber": 4, "updateType": "Differential"}) == "Accepted"
    assert await version(block) == 4
    assert fx.model.int(LOCAL_LIST_ENTRIES) == 2


@pytest.mark.parametrize("older", [1, 5])
async def test_differential_update_with_an_old_version_is_a_mismatch(tmp_path, older):
    """D01.FR.19: a differential update whose versionNumber is not above the list's is VersionMismatch and
    changes nothing."""
    fx, block = setup(tmp_path)
    await send(block, full_list(5, entry(RFID)))
    assert await send(block, full_list(older, entry(OTHER), update="Differential")) == "VersionMismatch"
    assert fx.model.int(LOCAL_LIST_ENTRIES) == 1
    assert await version(block) == 5


@pytest.mark.parametrize("payload", [
    {"versionNumber": 0, "updateType": "Full", "localAuthorizationList": [entry(RFID)]},  # D01.FR.18
    {"versionNumber": 2, "updateType": "Full", "localAuthorizationList": [entry(RFID), entry(OTHER, None)]},
    {"versionNumber": 2, "updateType": "Full",  # D01.FR.06: tokens are unique (case-insensitively)
     "localAuthorizationList": [entry(RFID), entry({"idToken": "04a1b2c3", "type": "ISO14443"}, "Blocked")]},
    {"versionNumber": 2, "updateType": "Differential", "localAuthorizationList": [entry(RFID), entry(RFID, None)]},
])
async def test_a_list_that_breaks_the_rules_fails_and_changes_nothing(tmp_path, payload):
    fx, block = setup(tmp_path)
    await send(block, full_list(1, entry(OTHER)))
    assert await send(block, payload) == "Failed"
    assert await version(block) == 1
    assert block.repository.list_info(OTHER["idToken"], OTHER["type"]) is not None


async def test_a_list_beyond_storage_fails_and_keeps_the_old_list(tmp_path):
    """LocalAuthListCtrlr.Storage: an update that would make the list longer fails as a whole."""
    fx, block = setup(tmp_path, {"LocalAuthListCtrlr.Storage": "2"})
    third = {"idToken": "THIRD", "type": "KeyCode"}
    await send(block, full_list(1, entry(RFID), entry(OTHER)))
    assert await send(block, full_list(2, entry(third), update="Differential")) == "Failed"
    assert await send(block, full_list(2, entry(RFID), entry(OTHER), entry(third))) == "Failed"
    assert await version(block) == 1
    assert fx.model.int(LOCAL_LIST_ENTRIES) == 2
    assert block.repository.list_info("THIRD", "KeyCode") is None
    assert await send(block, full_list(2, entry(third, None), entry(OTHER, None), update="Differential")) == "Accepted"


async def test_per_message_limits_are_callerrors(tmp_path):
    """LocalAuthListCtrlr.ItemsPerMessage (OccurrenceConstraintViolation), BytesPerMessage
    (FormatViolation), and values the schema leaves open (PropertyConstraintViolation)."""
    fx, block = setup(tmp_path, {"LocalAuthListCtrlr.ItemsPerMessage": "1",
                                 "LocalAuthListCtrlr.BytesPerMessage": "200"})
    codes = []
    for payload in (full_list(1, entry(RFID), entry(OTHER)),
                    full_list(1, entry(RFID, personalMessage={"format": "UTF8", "content": "x" * 200})),
                    full_list(1, entry(RFID, evseId=[0]))):
        with pytest.raises(OcppCallError) as error:
            await block.on_send_local_list(payload)
        codes.append(DIALECT.codes[error.value.code])
    assert codes == ["OccurrenceConstraintViolation", "FormatViolation", "PropertyConstraintViolation"]
    assert await version(block) == 0


async def test_a_disabled_list_is_not_updated_nor_read(tmp_path):
    """D02: with LocalAuthListCtrlr.Enabled false the version reads 0 and SendLocalList fails; its tokens
    are authorized at the CSMS."""
    fx, block = setup(tmp_path, PRE_AUTHORIZE)
    await send(block, full_list(4, entry(RFID)))
    fx2, block2 = setup(tmp_path, {**PRE_AUTHORIZE, "LocalAuthListCtrlr.Enabled": "false"}, fixture=fx)
    assert await version(block2) == 0
    assert await send(block2, full_list(5, entry(OTHER))) == "Failed"
    answer(fx2, "Invalid")
    assert await validate(block2) == {"authorization_status": "Invalid"}


async def test_local_list_refusals(tmp_path):
    """C14: a token the list holds as not Accepted is post-authorized online, or refused at once with
    LocalAuthListCtrlr.DisablePostAuthorize; offline it is refused; an expired entry counts as Expired."""
    fx, block = setup(tmp_path, {**PRE_AUTHORIZE, "LocalAuthListCtrlr.DisablePostAuthorize": "true",
                                 "AuthCtrlr.OfflineTxForUnknownIdEnabled": "true"})
    await send(block, full_list(1, entry(RFID, "Blocked"), entry(OTHER, cacheExpiryDateTime=iso(fx, 10))))
    assert await validate(block) == {"authorization_status": "Blocked"}
    fx.sender.online = False
    assert await validate(block) == {"authorization_status": "Blocked"}
    assert (await validate(block, OTHER))["authorization_status"] == "Accepted"
    await fx.clock.advance(11)
    assert (await validate(block, OTHER))["authorization_status"] == "Expired"
    assert fx.sender.of("Authorize") == []


async def test_the_list_survives_a_restart(tmp_path):
    """D01: the list, its version and Entries are kept across a restart."""
    fx, block = setup(tmp_path)
    await send(block, full_list(7, entry(RFID), entry(OTHER)))
    fx2, block2 = setup(tmp_path, fixture=fx)
    assert await version(block2) == 7
    assert fx2.model.int(LOCAL_LIST_ENTRIES) == 2
    fx2.sender.online = False
    assert await validate(block2) == {"authorization_status": "Accepted"}
