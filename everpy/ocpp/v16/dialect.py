"""OCPP-J 1.6's RPC dialect: draft-04 schemas, its error codes (§4.2.3), unknown message types ignored.

==============================  ===============================================================
NotImplemented                  the action name is not an OCPP action at all
NotSupported                    an OCPP action this side does not handle
ProtocolError                   payload incomplete (a required field is missing)
FormationViolation              payload does not fit the PDU (extra field, not an object, bad frame)
PropertyConstraintViolation     a field has a value outside its allowed set or range
OccurenceConstraintViolation    a list has too few or too many elements (1.6's spelling)
TypeConstraintViolation         a field has the wrong data type (also string too long, bad dateTime)
InternalError                   the handler failed
GenericError                    anything else, also a CALL that is not valid JSON
==============================  ===============================================================
"""

from __future__ import annotations

from jsonschema import Draft4Validator

from everpy.ocpp.rpc import Dialect, Fault, Schemas

SUBPROTOCOL = "ocpp1.6"

DIALECT = Dialect(
    subprotocol=SUBPROTOCOL,
    schemas=Schemas("v16", draft=Draft4Validator),
    codes={
        Fault.NOT_IMPLEMENTED: "NotImplemented", Fault.NOT_SUPPORTED: "NotSupported",
        Fault.PROTOCOL: "ProtocolError", Fault.FORMATION: "FormationViolation",
        Fault.PROPERTY: "PropertyConstraintViolation", Fault.OCCURRENCE: "OccurenceConstraintViolation",
        Fault.TYPE: "TypeConstraintViolation", Fault.INTERNAL: "InternalError", Fault.GENERIC: "GenericError",
        Fault.SECURITY: "SecurityError", Fault.FRAMEWORK: "FormationViolation",
    },  # fmt: skip
    unknown_message_type_code=None,  # OCPP-J 1.6 §4.1.3: ignored
)
