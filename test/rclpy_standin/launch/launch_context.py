from __future__ import annotations


class LaunchContext:
    def __init__(self, argv=None, *, noninteractive=False, debug=False, package_share=None):
        self.launch_configurations: dict[str, str] = {}
        self.package_share = package_share or {}
