"""sensor_msgs/msg (stand-in): the types dm1_ros uses."""
from rosidl_standin import message

Image = message("Image", {"header": "std_msgs/Header", "height": "uint32", "width": "uint32", "encoding": "string",
                          "is_bigendian": "uint8", "step": "uint32", "data": "sequence<uint8>"}, __name__)
RegionOfInterest = message("RegionOfInterest", {"x_offset": "uint32", "y_offset": "uint32", "height": "uint32",
                                                "width": "uint32", "do_rectify": "boolean"}, __name__)
CameraInfo = message("CameraInfo", {"header": "std_msgs/Header", "height": "uint32", "width": "uint32",
                                    "distortion_model": "string", "d": "sequence<double>", "k": "double[9]",
                                    "r": "double[9]", "p": "double[12]", "binning_x": "uint32", "binning_y": "uint32",
                                    "roi": "sensor_msgs/RegionOfInterest"}, __name__)
JointState = message("JointState", {"header": "std_msgs/Header", "name": "sequence<string>",
                                    "position": "sequence<double>", "velocity": "sequence<double>",
                                    "effort": "sequence<double>"}, __name__)
