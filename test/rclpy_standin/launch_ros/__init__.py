"""launch_ros stand-in."""
from launch_ros import actions, parameter_descriptions, substitutions  # noqa: F401
