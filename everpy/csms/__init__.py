"""The development CSMS (``everpy csms``): a tool beside the charger, not part of the station.

``everpy.csms.v16`` is an OCPP 1.6J central system on the ``ocpp`` package, used by the tests and as the
development CSMS. It shares only the websocket transport with the station code.
"""

from everpy.csms.v16 import Behaviour, Csms, Received, main

__all__ = ["Behaviour", "Csms", "Received", "main"]
