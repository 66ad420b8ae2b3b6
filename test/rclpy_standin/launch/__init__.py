"""launch stand-in: the classes dm1_ros launch files use, and a small evaluator for tests.

`launch._standin_evaluate(description, arguments)` resolves launch arguments, conditions and substitutions the
way `ros2 launch` would and returns the node actions that would start, with their parameter files and values.
"""
from __future__ import annotations

from launch import actions, conditions, launch_description_sources, substitutions  # noqa: F401
from launch.launch_context import LaunchContext
from launch.launch_description import LaunchDescription
from launch.substitution import Substitution

STANDIN = True

__all__ = ["LaunchDescription", "LaunchContext", "Substitution", "actions", "conditions", "substitutions",
           "launch_description_sources"]


def _standin_evaluate(description, arguments=None, package_share=None):
    """-> (context, [launch_ros Node actions that would start])."""
    from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription

    context = LaunchContext(package_share=package_share)
    context.launch_configurations.update({k: str(v) for k, v in (arguments or {}).items()})
    started = []

    def visit(entities):
        for entity in entities:
            condition = getattr(entity, "condition", None)
            if condition is not None and not condition.evaluate(context):
                continue
            if isinstance(entity, DeclareLaunchArgument):
                if entity.name not in context.launch_configurations:
                    if entity.default_value is None:
                        raise RuntimeError(f"launch argument '{entity.name}' is required")
                    context.launch_configurations[entity.name] = substitutions.perform(entity.default_value, context)
                value = context.launch_configurations[entity.name]
                if entity.choices is not None and value not in entity.choices:
                    raise RuntimeError(f"argument '{entity.name}': '{value}' is not one of {entity.choices}")
            elif isinstance(entity, IncludeLaunchDescription):
                for k, v in entity.launch_arguments:
                    context.launch_configurations[substitutions.perform(k, context)] = substitutions.perform(v, context)
                visit(entity.launch_description_source.get_launch_description(context).entities)
            elif isinstance(entity, GroupAction):
                visit(entity.actions)
            elif hasattr(entity, "_standin_resolve"):
                started.append(entity._standin_resolve(context))
    visit(description.entities)
    return context, started
