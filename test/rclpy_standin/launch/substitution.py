from __future__ import annotations


class Substitution:
    def perform(self, context) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__
