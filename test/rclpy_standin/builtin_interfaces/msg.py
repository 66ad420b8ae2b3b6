"""builtin_interfaces/msg (stand-in)."""
from rosidl_standin import message

Time = message("Time", {"sec": "int32", "nanosec": "uint32"}, __name__)
Duration = message("Duration", {"sec": "int32", "nanosec": "uint32"}, __name__)
