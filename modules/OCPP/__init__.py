"""OCPP 1.6J charging-station module (station logic in everpy.ocpp.v16)."""

from everpy.core.plugins import ModuleType, hookimpl, module_type


@hookimpl
def everpy_module_types() -> list[ModuleType]:
    return [module_type(__file__, "everpy_modules.OCPP.ocpp:OCPP")]
