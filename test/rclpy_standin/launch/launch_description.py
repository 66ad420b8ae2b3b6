from __future__ import annotations


class LaunchDescription:
    def __init__(self, initial_entities=None, *, deprecated_reason=None):
        self.entities = list(initial_entities or [])

    def add_action(self, action) -> None:
        self.entities.append(action)

    def add_entity(self, entity) -> None:
        self.entities.append(entity)

    def get_launch_arguments(self, conditional_inclusion=False):
        from launch.actions import DeclareLaunchArgument, GroupAction

        out = []

        def visit(entities):
            for e in entities:
                if isinstance(e, DeclareLaunchArgument):
                    out.append(e)
                elif isinstance(e, GroupAction):
                    visit(e.actions)
        visit(self.entities)
        return out
