"""OCPP for everpy: version-neutral plumbing (transport, OCPP-J RPC, persistent store) and the
version-specific station logic (``everpy.ocpp.v16``; a ``v201`` package can sit beside it).

``everpy.csms`` is a small central system on the ``ocpp`` package, used by the tests and as the
development CSMS (``everpy csms``).
"""
