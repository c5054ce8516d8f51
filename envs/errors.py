"""Typed user-facing errors: one line that says what failed, why, and what to do.

The harness maps every `UserError` to one line on stderr and exit status 2; anything else
is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user (config, names, data); never a bug in the project."""


class ConfigError(UserError):
    """A configuration value, name or combination that cannot work."""


class EnvUnavailable(UserError):
    """A family's simulator (pip extra or external binary) is not installed here."""


class TaskUnsupported(ConfigError):
    """The simulator installed (or chosen) here cannot run this task, e.g. a SMAC map with
    medivacs on SMAX. A single run exits 2 with the line; a sweep lists the job as not
    runnable here with the line as its reason."""
