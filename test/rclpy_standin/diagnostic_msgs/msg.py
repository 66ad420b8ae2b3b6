"""diagnostic_msgs/msg (stand-in)."""
from rosidl_standin import message

KeyValue = message("KeyValue", {"key": "string", "value": "string"}, __name__)
DiagnosticStatus = message(
    "DiagnosticStatus",
    {"level": "octet", "name": "string", "message": "string", "hardware_id": "string",
     "values": "sequence<diagnostic_msgs/KeyValue>"}, __name__,
    OK=b'\x00', WARN=b'\x01', ERROR=b'\x02', STALE=b'\x03')
DiagnosticArray = message("DiagnosticArray", {"header": "std_msgs/Header",
                                              "status": "sequence<diagnostic_msgs/DiagnosticStatus>"}, __name__)
