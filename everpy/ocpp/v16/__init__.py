"""OCPP 1.6J on the shared OCPP core: ``chargepoint`` wires the functional blocks (one file each:
``status``, ``transactions``, ``authorization``, ``availability``, ``remote_control``,
``configuration_messages``, ``local_auth``, ``reservation``, ``smart_charging``, ``firmware``,
``trigger``, ``security``) behind the version-neutral ChargePointInterface; ``dialect`` is 1.6's RPC
dialect, ``config_keys`` the table of configuration keys and ``repository`` the 1.6 tables of the store
(transactions, id tag lists)."""
