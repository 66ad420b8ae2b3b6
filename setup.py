"""ament_python package dm1_ros; also a plain pip package (`pip install -e .[test]`)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dm1_ros"

# Exact pins: versions tested together (see ../shared/ARCHITECTURE.md). torch must be exact, or pip pulls a
# multi-GB CUDA build instead of the local CPU wheel.
RUNTIME = ["numpy==2.4.6", "onnxruntime==1.31.1", "pyyaml==6.0.3", "h5py==3.16.0", "tqdm==4.70.1", "transforms3d==0.4.2"]
TRAIN = ["torch==2.13.0", "onnx==1.23.2", "matplotlib==3.11.2", "tensorboard==2.21.0", "gymnasium==1.4.0"]
SIM = ["robosuite==1.5.1", "mujoco==3.9.0", "opencv-python==4.14.0.94"]
# numba (also robosuite's) compiles the point-cloud kernels in runtime/pointcloud.py; without it numpy does the same
ROBOT = ["franky-control==2.0.0", "pyrealsense2==2.59.1.11053", "opencv-python==4.14.0.94", "rosbags==0.11.9",
         "pynput==1.8.2", "numba==0.68.1"]
FRANKA_SIM = ["franky-sim==1.0.4"]  # libfranka-protocol simulator (MuJoCo) the Franka bridge is tested against
GPU = ["onnxruntime-gpu==1.31.1"]  # replaces onnxruntime (same module): uninstall onnxruntime first
# Python tools a ROS 2 workspace needs beside a source-built or pip-only environment (colcon from PyPI; lark, psutil,
# catkin_pkg and empy 3 are what launch and ros2cli import): the ROS tests build and launch the package with them.
ROS_TOOLS = ["colcon-common-extensions==0.3.0", "lark==1.3.1", "psutil==7.2.2", "catkin-pkg==1.1.1", "empy==3.3.4"]
# LeRobotDataset v3.0 export/import (`dm1 dataset export|import`, training from a LeRobot directory): parquet, mp4
DATASETS = ["pyarrow==26.0.1", "av==18.1.0"]
TEST = ["pytest==9.2.0"]


def tree(src):
    """data_files entries that install every file under `src` into share/dm1_ros/src."""
    return [(f"share/{PACKAGE}/{src}", [f for f in glob(f"{src}/*") if "." in f.rsplit("/", 1)[-1]])] + [
        (f"share/{PACKAGE}/{d}", [f for f in glob(f"{d}/*") if "." in f.rsplit("/", 1)[-1]])
        for d in sorted(glob(f"{src}/**/", recursive=True))[1:]
        for d in [d.rstrip("/")]
    ]


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *tree("launch"),
        *tree("config"),
        *tree("models"),
    ],
    install_requires=RUNTIME,
    extras_require={
        "train": TRAIN,
        "sim": TRAIN + SIM,
        "robot": ROBOT,
        "gpu": GPU,
        "franka-sim": FRANKA_SIM,
        "ros-tools": ROS_TOOLS,
        "datasets": DATASETS,
        "test": TRAIN + SIM + ROBOT + FRANKA_SIM + ROS_TOOLS + DATASETS + TEST,
    },
    python_requires=">=3.10",
    zip_safe=True,
    maintainer="dm1_ros developers",
    maintainer_email="dm1-ros@example.org",
    description="One-step generative policies (MeanFlow) for real-time robot control on ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "dm1 = dm1_ros.cli:main",
            # ROS 2 nodes (`ros2 run dm1_ros <name>`); keep in step with dm1_ros.ros.CONSOLE_SCRIPTS
            "camera_node = dm1_ros.ros.camera_node:main",
            "policy_node = dm1_ros.ros.policy_node:main",
            "franka_bridge_node = dm1_ros.ros.franka_bridge_node:main",
            "sim_bridge_node = dm1_ros.ros.sim_bridge_node:main",
            "teleop_node = dm1_ros.ros.teleop_node:main",
        ],
    },
)
