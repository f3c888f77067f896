from pathlib import Path

from everpy.core.plugins import hookimpl, module_type


@hookimpl
def everpy_module_types() -> list:
    return [module_type(__file__, "everpy_modules.TokenProviderSimulator.simulator:TokenProviderSimulator")]


@hookimpl
def everpy_definition_dirs() -> list[Path]:
    return [Path(__file__).resolve().parent / "definitions"]  # the token_simulator interface
