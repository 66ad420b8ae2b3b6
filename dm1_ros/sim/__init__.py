"""dm1_ros.sim (see ARCHITECTURE.md)."""
