from __future__ import annotations


class ParameterValue:
    def __init__(self, value, *, value_type=None):
        self.value = value
        self.value_type = value_type


class ParameterFile:
    def __init__(self, param_file, *, allow_substs=False):
        self.param_file = param_file
