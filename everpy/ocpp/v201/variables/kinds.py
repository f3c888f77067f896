"""Short constructors for the definitions: one line per variable in the controller files."""

from __future__ import annotations

from typing import Any

from everpy.ocpp.v201.device_model import DataType, Mutability, Ref, Variable

R, W, RW = Mutability.READ_ONLY, Mutability.WRITE_ONLY, Mutability.READ_WRITE


def boolean(component: str, name: str, default: bool | None, description: str, **more: Any) -> Variable:
    value = None if default is None else ("true" if default else "false")
    return Variable(component, name, DataType.BOOLEAN, description, value, **more)


def integer(component: str, name: str, default: int | None, description: str, **more: Any) -> Variable:
    return Variable(component, name, DataType.INTEGER, description, None if default is None else str(default), **more)


def decimal(component: str, name: str, default: float | None, description: str, **more: Any) -> Variable:
    return Variable(component, name, DataType.DECIMAL, description, None if default is None else str(default), **more)


def string(component: str, name: str, default: str | None, description: str, **more: Any) -> Variable:
    return Variable(component, name, DataType.STRING, description, default, **more)


def option(component: str, name: str, default: str | None, values: tuple[str, ...], description: str,
           **more: Any) -> Variable:
    return Variable(component, name, DataType.OPTION_LIST, description, default, values_list=values, **more)


def members(component: str, name: str, default: str | None, values: tuple[str, ...], description: str,
            **more: Any) -> Variable:
    return Variable(component, name, DataType.MEMBER_LIST, description, default, values_list=values, **more)


def sequence(component: str, name: str, default: str | None, values: tuple[str, ...], description: str,
             **more: Any) -> Variable:
    return Variable(component, name, DataType.SEQUENCE_LIST, description, default, values_list=values, **more)


def ref(definitions: tuple[Variable, ...], component: str, name: str, instance: str | None = None) -> Ref:
    """The Ref of a variable defined in `definitions`; a name that is not there fails at import."""
    for definition in definitions:
        if definition.component == component and definition.name == name and definition.instance == instance:
            return definition.ref
    raise LookupError(f"{component}.{name}[{instance}] is not defined")
