"""dm1_ros: one-step generative policies (MeanFlow + dispersive regularization) for real-time robot control."""

__version__ = "0.1.0"
