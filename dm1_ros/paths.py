"""Files the package ships (models/, config/, launch/): from the source tree, or from share/dm1_ros of an installed
ROS 2 package (colcon), whichever exists. No ROS needed to import this."""
from __future__ import annotations

from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent
# The default bundle (demo, launch files, the policy node): the best lift model, re-planning every tick
# (docs/results.md "More demonstrations").
SHIPPED_MODEL = "lift_image_fast_500"


def share_path(*parts: str) -> Path:
    """SOURCE_ROOT/parts when it exists, else share/dm1_ros/parts of the installed package, else the source path
    (whose absence the caller reports)."""
    here = SOURCE_ROOT.joinpath(*parts)
    if here.exists():
        return here
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("dm1_ros")).joinpath(*parts)
        if installed.exists():
            return installed
    except Exception:  # noqa: BLE001 - no ROS, or the package is not installed: the source path
        pass
    return here


def default_model_path() -> Path:
    """The shipped model bundle."""
    return share_path("models", SHIPPED_MODEL)


def default_config_path(name: str) -> Path:
    """A file under config/, e.g. default_config_path('robot/franka.yaml')."""
    return share_path("config", *name.split("/"))
