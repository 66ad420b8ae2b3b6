"""launch.conditions (stand-in)."""
from __future__ import annotations

from launch.substitutions import perform


def _truthy(text: str, what) -> bool:
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ValueError(f"Unknown value for {what}: expected 'true', 'false', '1' or '0', got {text!r}")


class Condition:
    def __init__(self, *, predicate=None):
        self._predicate = predicate

    def evaluate(self, context) -> bool:
        return bool(self._predicate(context))


class IfCondition(Condition):
    def __init__(self, predicate_expression):
        self.predicate_expression = predicate_expression
        super().__init__(predicate=lambda ctx: _truthy(perform(predicate_expression, ctx), "IfCondition"))


class UnlessCondition(Condition):
    def __init__(self, predicate_expression):
        self.predicate_expression = predicate_expression
        super().__init__(predicate=lambda ctx: not _truthy(perform(predicate_expression, ctx), "UnlessCondition"))
