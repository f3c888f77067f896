"""TC_069: a token of the same group (parentIdTag) stops the transaction, also when the group is only
known from the CSMS's answer to StartTransaction (a prevalidated remote start)."""

from __future__ import annotations

from everpy.csms import Csms

from .station import WAIT_S, sil_station


async def test_parent_from_start_transaction_answer_lets_a_group_token_stop(tmp_path, csms: Csms):
    csms.behaviour.parents = {"REMOTE1": "FLEET", "CARD2": "FLEET"}
    async with sil_station(tmp_path, csms, keys={"AuthorizeRemoteTxRequests": "false"}) as station:
        await station.plug_in()
        mark = len(csms.received)
        assert (await station.call("RemoteStartTransaction", idTag="REMOTE1", connectorId=1))["status"] == "Accepted"
        await station.status("Charging", after=mark)
        assert not csms.messages("Authorize")  # prevalidated: the group comes only with StartTransaction.conf
        await station.swipe("CARD2")
        stop = await csms.wait_for("StopTransaction", timeout=WAIT_S)
        assert stop.payload["reason"] == "Local" and stop.payload["idTag"] == "CARD2"
