"""launch_ros.actions (stand-in): Node records what `ros2 launch` would start."""
from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from launch.actions import Action
from launch.substitutions import perform


@dataclass
class ResolvedNode:
    package: str
    executable: str
    name: str | None
    namespace: str | None
    parameter_files: list = field(default_factory=list)
    parameters: dict = field(default_factory=dict)  # files merged in order, then inline values (what the node gets)
    remappings: list = field(default_factory=list)


def _coerce(text: str, value_type):
    if value_type is str:
        return text
    if value_type is float:
        return float(text)
    if value_type is int:
        return int(text)
    if value_type is bool:
        return yaml.safe_load(text) is True
    return yaml.safe_load(text) if text != "" else ""


class Node(Action):
    def __init__(self, *, executable, package=None, name=None, namespace=None, exec_name=None, parameters=None,
                 remappings=None, ros_arguments=None, arguments=None, output="log", emulate_tty=False, respawn=False,
                 respawn_delay=None, **kwargs):
        super().__init__(**{k: v for k, v in kwargs.items() if k == "condition"})
        self.package = package
        self.executable = executable
        self.name = name
        self.namespace = namespace
        self.parameters = list(parameters or [])
        self.remappings = list(remappings or [])

    @property
    def node_executable(self):
        return self.executable

    def _standin_resolve(self, context) -> ResolvedNode:
        from launch_ros.parameter_descriptions import ParameterValue

        name = perform(self.name, context) if self.name is not None else None
        node = ResolvedNode(perform(self.package, context), perform(self.executable, context), name,
                            perform(self.namespace, context) if self.namespace is not None else None)
        for entry in self.parameters:
            if isinstance(entry, dict):
                for key, value in entry.items():
                    key = perform(key, context)
                    if isinstance(value, ParameterValue):
                        node.parameters[key] = _coerce(perform(value.value, context), value.value_type)
                    elif isinstance(value, (str, list)) or hasattr(value, "perform"):
                        node.parameters[key] = _coerce(perform(value, context), None) if not isinstance(
                            value, list) or any(hasattr(v, "perform") for v in value) else value
                    else:
                        node.parameters[key] = value
            else:
                path = perform(entry, context)
                node.parameter_files.append(path)
                with open(path) as f:
                    data = yaml.safe_load(f) or {}
                for key in ("/**", name or node.executable):
                    section = data.get(key) or data.get("/" + key if not key.startswith("/") else key)
                    if section:
                        node.parameters.update(section.get("ros__parameters", {}))
        for a, b in self.remappings:
            node.remappings.append((perform(a, context), perform(b, context)))
        return node
