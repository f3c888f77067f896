"""SatelliteController: stands in on the main board for one satellite board's modules."""

from everpy.core.plugins import hookimpl, module_type


@hookimpl
def everpy_module_types() -> list:
    return [module_type(__file__, "everpy_modules.SatelliteController.controller:SatelliteController")]
