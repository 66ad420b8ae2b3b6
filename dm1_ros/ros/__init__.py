"""dm1_ros.ros (see ARCHITECTURE.md)."""
