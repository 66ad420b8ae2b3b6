"""geometry_msgs/msg (stand-in): the types dm1_ros uses."""
from rosidl_standin import message

Vector3 = message("Vector3", {"x": "double", "y": "double", "z": "double"}, __name__)
Point = message("Point", {"x": "double", "y": "double", "z": "double"}, __name__)
Quaternion = message("Quaternion", {"x": "double", "y": "double", "z": "double", "w": "double"}, __name__)


def _quaternion_init(self, **kwargs):  # rosidl default for Quaternion.w is 1.0
    kwargs.setdefault("w", 1.0)
    super(Quaternion, self).__init__(**kwargs)


Quaternion.__init__ = _quaternion_init
Pose = message("Pose", {"position": "geometry_msgs/Point", "orientation": "geometry_msgs/Quaternion"}, __name__)
PoseStamped = message("PoseStamped", {"header": "std_msgs/Header", "pose": "geometry_msgs/Pose"}, __name__)
Transform = message("Transform", {"translation": "geometry_msgs/Vector3", "rotation": "geometry_msgs/Quaternion"},
                    __name__)
Twist = message("Twist", {"linear": "geometry_msgs/Vector3", "angular": "geometry_msgs/Vector3"}, __name__)
