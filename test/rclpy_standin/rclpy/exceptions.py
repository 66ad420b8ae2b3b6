"""rclpy.exceptions (stand-in): the parameter exceptions nodes may see."""


class ParameterException(Exception):
    def __init__(self, error_msg, parameters, *args):
        Exception.__init__(self, f"{error_msg}: {parameters}", *args)


class ParameterNotDeclaredException(ParameterException):
    def __init__(self, parameters, *args):
        ParameterException.__init__(self, "Invalid access to undeclared parameter(s)", parameters, *args)


class ParameterAlreadyDeclaredException(ParameterException):
    def __init__(self, parameters, *args):
        ParameterException.__init__(self, "Parameter(s) already declared", parameters, *args)


class InvalidParameterValueException(ParameterException):
    def __init__(self, parameter, value, reason, *args):
        Exception.__init__(self, f"Invalid parameter value ({value}) for parameter. Reason: {reason}", parameter, *args)


class InvalidParameterTypeException(ParameterException):
    def __init__(self, desired_parameter, expected_type, *args):
        Exception.__init__(self, f"Trying to set parameter '{desired_parameter._name}' to '{desired_parameter._value}' "
                                 f"of type '{desired_parameter._type_.name}', expecting type '{expected_type}'", *args)


class ParameterImmutableException(ParameterException):
    def __init__(self, parameters, *args):
        ParameterException.__init__(self, "Attempted to modify read-only parameter", parameters, *args)


class NotInitializedException(Exception):
    def __init__(self, *args):
        Exception.__init__(self, "rclpy.init() has not been called", *args)
