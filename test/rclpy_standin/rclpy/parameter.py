"""rclpy.parameter (stand-in): Parameter and Parameter.Type, with rclpy's type inference and checks."""
from __future__ import annotations

import array
from enum import Enum

from rcl_interfaces.msg import ParameterType


class Parameter:
    class Type(Enum):
        NOT_SET = ParameterType.PARAMETER_NOT_SET
        BOOL = ParameterType.PARAMETER_BOOL
        INTEGER = ParameterType.PARAMETER_INTEGER
        DOUBLE = ParameterType.PARAMETER_DOUBLE
        STRING = ParameterType.PARAMETER_STRING
        BYTE_ARRAY = ParameterType.PARAMETER_BYTE_ARRAY
        BOOL_ARRAY = ParameterType.PARAMETER_BOOL_ARRAY
        INTEGER_ARRAY = ParameterType.PARAMETER_INTEGER_ARRAY
        DOUBLE_ARRAY = ParameterType.PARAMETER_DOUBLE_ARRAY
        STRING_ARRAY = ParameterType.PARAMETER_STRING_ARRAY

        @classmethod
        def from_parameter_value(cls, value):
            if value is None:
                return cls.NOT_SET
            if isinstance(value, bool):
                return cls.BOOL
            if isinstance(value, int):
                return cls.INTEGER
            if isinstance(value, float):
                return cls.DOUBLE
            if isinstance(value, str):
                return cls.STRING
            if isinstance(value, (list, tuple, array.array)):
                if all(isinstance(v, bytes) for v in value):
                    return cls.BYTE_ARRAY
                if all(isinstance(v, bool) for v in value):
                    return cls.BOOL_ARRAY
                if all(isinstance(v, int) for v in value):
                    return cls.INTEGER_ARRAY
                if all(isinstance(v, float) for v in value):
                    return cls.DOUBLE_ARRAY
                if all(isinstance(v, str) for v in value):
                    return cls.STRING_ARRAY
                raise TypeError(f"The given value is not a list of one of the allowed types '{value}'.")
            raise TypeError(f"The given value is not one of the allowed types '{value}'.")

        def check(self, value) -> bool:
            T = Parameter.Type
            if self == T.NOT_SET:
                return value is None
            if self == T.BOOL:
                return isinstance(value, bool)
            if self == T.INTEGER:
                return isinstance(value, int)
            if self == T.DOUBLE:
                return isinstance(value, float)
            if self == T.STRING:
                return isinstance(value, str)
            if self == T.BYTE_ARRAY:
                return isinstance(value, (list, tuple)) and all(isinstance(v, bytes) and len(v) == 1 for v in value)
            if self == T.BOOL_ARRAY:
                return isinstance(value, (list, tuple)) and all(isinstance(v, bool) for v in value)
            if self == T.INTEGER_ARRAY:
                return isinstance(value, (list, tuple, array.array)) and all(isinstance(v, int) for v in value)
            if self == T.DOUBLE_ARRAY:
                return isinstance(value, (list, tuple, array.array)) and all(isinstance(v, float) for v in value)
            if self == T.STRING_ARRAY:
                return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
            return False

    def __init__(self, name, type_=None, value=None):
        if type_ is None:
            type_ = Parameter.Type.from_parameter_value(value)
        if not isinstance(type_, Parameter.Type):
            raise TypeError(f"type must be an instance of '{Parameter.Type!r}'")
        if not type_.check(value):
            raise ValueError(f"Type '{type_}' and value '{value}' do not agree")
        self._type_ = type_
        self._name = name
        self._value = value

    @property
    def name(self):
        return self._name

    @property
    def type_(self):
        return self._type_

    @property
    def value(self):
        return self._value

    def __repr__(self):
        return f"Parameter({self._name!r}, {self._type_}, {self._value!r})"
