"""std_msgs/msg (stand-in): the types dm1_ros uses."""
from rosidl_standin import message

Header = message("Header", {"stamp": "builtin_interfaces/Time", "frame_id": "string"}, __name__)
Bool = message("Bool", {"data": "boolean"}, __name__)
String = message("String", {"data": "string"}, __name__)
Float64 = message("Float64", {"data": "double"}, __name__)
Int32 = message("Int32", {"data": "int32"}, __name__)
MultiArrayDimension = message("MultiArrayDimension", {"label": "string", "size": "uint32", "stride": "uint32"}, __name__)
MultiArrayLayout = message("MultiArrayLayout", {"dim": "sequence<std_msgs/MultiArrayDimension>", "data_offset": "uint32"},
                           __name__)
Float64MultiArray = message("Float64MultiArray", {"layout": "std_msgs/MultiArrayLayout", "data": "sequence<double>"},
                            __name__)
Float32MultiArray = message("Float32MultiArray", {"layout": "std_msgs/MultiArrayLayout", "data": "sequence<float>"},
                            __name__)
