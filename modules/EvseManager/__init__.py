"""EvseManager: one AC charging point (IEC 61851-1 session, energy node, token provider)."""

from everpy.core.plugins import ModuleType, hookimpl, module_type


@hookimpl
def everpy_module_types() -> list[ModuleType]:
    return [module_type(__file__, "everpy_modules.EvseManager.evse_manager:EvseManager")]
