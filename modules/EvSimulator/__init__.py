"""EvSimulator: a simulated car driven by scripts in the EVerest car simulator language."""

from everpy.core.plugins import ModuleType, hookimpl, module_type


@hookimpl
def everpy_module_types() -> list[ModuleType]:
    return [module_type(__file__, "everpy_modules.EvSimulator.ev_simulator:EvSimulator")]
