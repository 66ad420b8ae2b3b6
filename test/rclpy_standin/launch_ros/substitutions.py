from __future__ import annotations

import os

from launch.substitution import Substitution
from launch.substitutions import perform


class FindPackageShare(Substitution):
    """The stand-in resolves a package to context.package_share[name], else to this source tree (dm1_ros)."""

    def __init__(self, package):
        self.package = package

    def perform(self, context) -> str:
        name = perform(self.package, context)
        if name in context.package_share:
            return context.package_share[name]
        return os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
