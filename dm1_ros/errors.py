"""The root of the errors a user can fix (a bad value, a file in the way, a missing device).

Every dm1_ros error class derives from Dm1Error as well as from the builtin it specializes, so the `dm1` command
prints its message on one line and exits non-zero; any other exception is a bug and keeps its traceback
(`dm1 --debug` shows the traceback of a Dm1Error too)."""


class Dm1Error(Exception):
    pass
