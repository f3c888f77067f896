"""BoardSupportSimulator: a simulated AC charging port (board, car side and power meter) for SIL."""

from everpy.core.plugins import ModuleType, hookimpl, module_type


@hookimpl
def everpy_module_types() -> list[ModuleType]:
    return [module_type(__file__, "everpy_modules.BoardSupportSimulator.board_simulator:BoardSupportSimulator")]
