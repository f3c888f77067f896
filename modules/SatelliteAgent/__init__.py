"""SatelliteAgent: serves a satellite board's modules to the main board over the satellite link."""

from everpy.core.plugins import hookimpl, module_type


@hookimpl
def everpy_module_types() -> list:
    return [module_type(__file__, "everpy_modules.SatelliteAgent.agent:SatelliteAgent")]
