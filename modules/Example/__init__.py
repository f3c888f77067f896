"""Example module: the one docs/writing-a-module.md walks through."""

from everpy.core.plugins import ModuleType, hookimpl, module_type


@hookimpl
def everpy_module_types() -> list[ModuleType]:
    return [module_type(__file__, "everpy_modules.Example.example:Example")]
