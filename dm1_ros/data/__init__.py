"""dm1_ros.data (see ARCHITECTURE.md)."""
