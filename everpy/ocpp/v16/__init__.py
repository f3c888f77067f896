"""OCPP 1.6J station logic: ``chargepoint`` (connection, boot, heartbeat, message queue) and one module
per feature profile (``core``, ``firmware``, ``local_auth``, ``reservation``, ``smart_charging``,
``trigger``, ``security``); ``config_keys`` is the table of configuration keys."""
