"""rcl_interfaces/msg (stand-in): parameter descriptors and results."""
from rosidl_standin import message

ParameterType = message("ParameterType", {}, __name__, PARAMETER_NOT_SET=0, PARAMETER_BOOL=1, PARAMETER_INTEGER=2,
                        PARAMETER_DOUBLE=3, PARAMETER_STRING=4, PARAMETER_BYTE_ARRAY=5, PARAMETER_BOOL_ARRAY=6,
                        PARAMETER_INTEGER_ARRAY=7, PARAMETER_DOUBLE_ARRAY=8, PARAMETER_STRING_ARRAY=9)
FloatingPointRange = message("FloatingPointRange", {"from_value": "double", "to_value": "double", "step": "double"},
                             __name__)
IntegerRange = message("IntegerRange", {"from_value": "int64", "to_value": "int64", "step": "uint64"}, __name__)
ParameterDescriptor = message(
    "ParameterDescriptor",
    {"name": "string", "type": "uint8", "description": "string", "additional_constraints": "string",
     "read_only": "boolean", "dynamic_typing": "boolean",
     "floating_point_range": "sequence<rcl_interfaces/FloatingPointRange>",
     "integer_range": "sequence<rcl_interfaces/IntegerRange>"}, __name__)
SetParametersResult = message("SetParametersResult", {"successful": "boolean", "reason": "string"}, __name__)
