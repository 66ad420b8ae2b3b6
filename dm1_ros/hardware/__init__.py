"""dm1_ros.hardware (see ARCHITECTURE.md)."""
