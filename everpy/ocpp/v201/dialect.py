"""OCPP-J 2.0.1's RPC dialect: draft-06/07 schemas, its error codes (OCPP-J 2.0.1 §4.3), and an answer
MessageTypeNotSupported to a frame of an unknown message type (§4.1.3).

==================================  ==========================================================
NotImplemented                      the action name is not an OCPP 2.0.1 action at all
NotSupported                        an OCPP 2.0.1 action this side does not handle
ProtocolError                       payload incomplete (a required field is missing)
FormatViolation                     payload does not fit the PDU (extra field, not an object)
PropertyConstraintViolation         a field has a value outside its allowed set or range
OccurrenceConstraintViolation       a list has too few or too many elements (2.0.1's spelling)
TypeConstraintViolation             a field has the wrong data type (also string too long, bad dateTime)
InternalError                       the handler failed
GenericError                        anything else
SecurityError                       a request the boot state does not allow (Pending: remote start/stop; Rejected: all)
RpcFrameworkError                   the frame is not a valid OCPP-J message (not JSON, not an array);
                                    with the message id "-1" when its id cannot be read
MessageTypeNotSupported             a frame of a message type other than 2, 3, 4
==================================  ==========================================================
"""

from __future__ import annotations

from jsonschema import Draft7Validator

from everpy.ocpp.rpc import Dialect, Fault, Schemas

SUBPROTOCOL = "ocpp2.0.1"

DIALECT = Dialect(
    subprotocol=SUBPROTOCOL,
    schemas=Schemas("v201", request_suffix="Request", draft=Draft7Validator),
    codes={
        Fault.NOT_IMPLEMENTED: "NotImplemented", Fault.NOT_SUPPORTED: "NotSupported",
        Fault.PROTOCOL: "ProtocolError", Fault.FORMATION: "FormatViolation",
        Fault.PROPERTY: "PropertyConstraintViolation", Fault.OCCURRENCE: "OccurrenceConstraintViolation",
        Fault.TYPE: "TypeConstraintViolation", Fault.INTERNAL: "InternalError", Fault.GENERIC: "GenericError",
        Fault.SECURITY: "SecurityError", Fault.FRAMEWORK: "RpcFrameworkError",
    },  # fmt: skip
    unknown_message_type_code="MessageTypeNotSupported",
    unreadable_message_id="-1",
)
