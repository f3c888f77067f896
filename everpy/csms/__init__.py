"""The development CSMS (``everpy csms``): a tool beside the charger, not part of the station.

``everpy.csms.v16`` (OCPP 1.6J) and ``everpy.csms.v201`` (OCPP 2.0.1) are central systems on the
``ocpp`` package, used by the tests and as the development CSMS; ``everpy.csms.common`` holds what they
share. They share only the websocket transport with the station code. The names exported here are the
1.6 ones, which most tests use.
"""

from __future__ import annotations

from everpy.csms import common, v16, v201
from everpy.csms.v16 import Behaviour, Csms, Received

__all__ = ["Behaviour", "Csms", "Received", "main"]

VERSIONS: dict[str, type[common.CsmsServer]] = {"1.6": v16.Csms, "2.0.1": v201.Csms}


def main(argv: list[str] | None = None) -> int:
    args = common.build_parser(list(VERSIONS)).parse_args(argv)
    return common.run(args, VERSIONS[args.ocpp])
