"""std_srvs/srv (stand-in)."""
from rosidl_standin import service

Trigger = service("Trigger", {}, {"success": "boolean", "message": "string"}, __name__)
SetBool = service("SetBool", {"data": "boolean"}, {"success": "boolean", "message": "string"}, __name__)
Empty = service("Empty", {}, {}, __name__)
