"""Message and service classes for the rclpy stand-in, checked the way rosidl_generator_py checks them.

A real rclpy message rejects what the stand-in rejects: an int in a float64 field, a numpy array in a
`sequence<double>`, a str in a uint32 field, a sub-message of the wrong type. Numeric sequences are stored as
`array.array`, fixed-size numeric arrays as numpy arrays, as in rclpy. Type names follow
`get_fields_and_field_types()` ('double', 'sequence<uint8>', 'double[9]', 'std_msgs/Header').
"""
from __future__ import annotations

import array
import copy
import importlib
import re
from collections import UserList, UserString
from collections.abc import Sequence, Set

import numpy as np

FLOATS = {"float": "f", "double": "d"}
INTS = {"int8": ("b", 8, True), "uint8": ("B", 8, False), "int16": ("h", 16, True),
        "uint16": ("H", 16, False), "int32": ("i", 32, True), "uint32": ("I", 32, False),
        "int64": ("q", 64, True), "uint64": ("Q", 64, False)}
_FIXED = re.compile(r"^(\w+)\[(\d+)\]$")


def _resolve(name: str):
    pkg, cls = name.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), cls)


def _int_ok(v, kind) -> bool:
    _, bits, signed = INTS[kind]
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2 ** bits)
    return isinstance(v, int) and lo <= v < hi


def _is_sequence(value) -> bool:
    return ((isinstance(value, (Sequence, Set, UserList))) and not isinstance(value, (str, UserString)))


class Field:
    def __init__(self, name: str, kind: str):
        self.name = name
        self.kind = kind

    def default(self):
        k = self.kind
        if k == "boolean":
            return False
        if k == "octet":
            return bytes([0])
        if k in FLOATS:
            return 0.0
        if k in INTS:
            return 0
        if k == "string":
            return ""
        m = _FIXED.match(k)
        if m:
            return np.zeros(int(m.group(2)), np.float64 if m.group(1) in FLOATS else np.int64)
        if k.startswith("sequence<"):
            inner = k[9:-1]
            if inner in FLOATS:
                return array.array(FLOATS[inner])
            if inner in INTS:
                return array.array(INTS[inner][0])
            return []
        return _resolve(k)()

    def check(self, value):
        k, n = self.kind, self.name
        if k == "boolean":
            assert isinstance(value, bool), f"The '{n}' field must be of type 'bool'"
            return value
        if k == "octet":
            assert isinstance(value, bytes) and len(value) == 1, (
                f"The '{n}' field must be of type 'bytes' or 'ByteString' with length 1")
            return value
        if k in FLOATS:
            assert isinstance(value, float), f"The '{n}' field must be of type 'float'"
            return value
        if k in INTS:
            assert isinstance(value, int), f"The '{n}' field must be of type 'int'"
            assert _int_ok(value, k), f"The '{n}' field must be an integer in the range of {k}"
            return value
        if k == "string":
            assert isinstance(value, str), f"The '{n}' field must be of type 'str'"
            return value
        m = _FIXED.match(k)
        if m:
            inner, size = m.group(1), int(m.group(2))
            dtype = np.float64 if inner in FLOATS else np.int64
            if isinstance(value, np.ndarray):
                assert value.dtype == dtype, f"The '{n}' numpy.ndarray() must have the dtype of '{np.dtype(dtype)}'"
                assert value.size == size, f"The '{n}' numpy.ndarray() must have a size of {size}"
                return value
            py = float if inner in FLOATS else int
            assert _is_sequence(value) and len(value) == size and all(isinstance(v, py) for v in value), (
                f"The '{n}' field must be a set or sequence with length {size} and each value of type '{py.__name__}'")
            return np.array(value, dtype=dtype)
        if k.startswith("sequence<"):
            inner = k[9:-1]
            if inner in FLOATS or inner in INTS:
                code = FLOATS[inner] if inner in FLOATS else INTS[inner][0]
                if isinstance(value, array.array):
                    assert value.typecode == code, f"The '{n}' array.array() must have the type code of '{code}'"
                    return value
                py = float if inner in FLOATS else int
                assert _is_sequence(value) and all(isinstance(v, py) for v in value) and (
                    inner in FLOATS or all(_int_ok(v, inner) for v in value)), (
                    f"The '{n}' field must be a set or sequence and each value of type '{py.__name__}'")
                return array.array(code, value)
            if inner == "string":
                assert _is_sequence(value) and all(isinstance(v, str) for v in value), (
                    f"The '{n}' field must be a set or sequence and each value of type 'str'")
                return value
            cls = _resolve(inner)
            assert _is_sequence(value) and all(isinstance(v, cls) for v in value), (
                f"The '{n}' field must be a set or sequence and each value of type '{cls.__name__}'")
            return value
        cls = _resolve(k)
        assert isinstance(value, cls), f"The '{n}' field must be a sub message of type '{cls.__name__}'"
        return value


class Message:
    """Subclasses set `_fields_and_field_types = {name: type}`; constants are plain class attributes."""

    _fields_and_field_types: dict[str, str] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._fields = [Field(n, t) for n, t in cls._fields_and_field_types.items()]
        for f in cls._fields:
            def getter(self, _n=f.name):
                return self.__dict__["_" + _n]

            def setter(self, value, _f=f):
                self.__dict__["_" + _f.name] = _f.check(value)

            setattr(cls, f.name, property(getter, setter))

    def __init__(self, **kwargs):
        unknown = sorted(k for k in kwargs if k not in self._fields_and_field_types)
        assert not unknown, f"Invalid arguments passed to constructor: {', '.join(unknown)}"
        for f in self._fields:
            setattr(self, f.name, kwargs[f.name] if f.name in kwargs else f.default())

    @classmethod
    def get_fields_and_field_types(cls):
        return dict(cls._fields_and_field_types)

    def __eq__(self, other):
        if type(other) is not type(self):
            return False
        for f in self._fields:
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray):
                if not np.array_equal(a, b):
                    return False
            elif a != b:
                return False
        return True

    def __repr__(self):
        mod = type(self).__module__.split(".")[0]
        return f"{mod}.msg.{type(self).__name__}(" + ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self._fields) + ")"

    def __deepcopy__(self, memo):
        new = type(self).__new__(type(self))
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new


def message(name: str, fields: dict[str, str], module: str, **constants) -> type:
    cls = type(name, (Message,), {"_fields_and_field_types": fields, "__module__": module, **constants})
    return cls


def service(name: str, request: dict[str, str], response: dict[str, str], module: str) -> type:
    req = message(f"{name}_Request", request, module)
    res = message(f"{name}_Response", response, module)
    return type(name, (), {"Request": req, "Response": res, "__module__": module})
