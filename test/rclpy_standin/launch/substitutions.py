"""launch.substitutions (stand-in)."""
from __future__ import annotations

import os

from launch.substitution import Substitution


def perform(value, context) -> str:
    """A str, a Substitution or a list of them -> str (launch's perform_substitutions)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Substitution):
        return value.perform(context)
    return "".join(perform(v, context) for v in value)


class TextSubstitution(Substitution):
    def __init__(self, *, text: str):
        self.text = text

    def perform(self, context) -> str:
        return self.text


class LaunchConfiguration(Substitution):
    def __init__(self, variable_name, *, default=None):
        self.variable_name = variable_name
        self.default = default

    def perform(self, context) -> str:
        name = perform(self.variable_name, context)
        if name in context.launch_configurations:
            return context.launch_configurations[name]
        if self.default is not None:
            return perform(self.default, context)
        raise KeyError(f"launch configuration '{name}' does not exist")


class PathJoinSubstitution(Substitution):
    def __init__(self, substitutions):
        self.substitutions = list(substitutions)

    def perform(self, context) -> str:
        return os.path.join(*[perform(s, context) for s in self.substitutions])


class PythonExpression(Substitution):
    def __init__(self, expression, python_modules=("math",)):
        self.expression = expression if isinstance(expression, (list, tuple)) else [expression]

    def perform(self, context) -> str:
        return str(eval(perform(self.expression, context), {}, {}))


class EnvironmentVariable(Substitution):
    def __init__(self, name, *, default_value=None):
        self.name = name
        self.default_value = default_value

    def perform(self, context) -> str:
        value = os.environ.get(perform(self.name, context))
        if value is None:
            if self.default_value is None:
                raise KeyError(self.name)
            return perform(self.default_value, context)
        return value
