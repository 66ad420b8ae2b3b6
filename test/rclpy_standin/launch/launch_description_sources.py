"""launch.launch_description_sources (stand-in)."""
from __future__ import annotations

import importlib.util


class PythonLaunchDescriptionSource:
    def __init__(self, launch_file_path):
        self.location = launch_file_path

    def get_launch_description(self, context):
        from launch.substitutions import perform

        path = perform(self.location, context)
        spec = importlib.util.spec_from_file_location("included_launch", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.generate_launch_description()
