"""Exceptions that carry a message meant for the workflow's user."""


class CultureSPAError(Exception):
    """Base class: a problem the user can fix (bad config, bad data, bad model output)."""


class ConfigError(CultureSPAError):
    """The configuration is invalid; the message names the offending key."""


class ChecksumError(CultureSPAError):
    """A fetched data file does not match its pinned sha256."""


class DataFileError(CultureSPAError):
    """An input or intermediate file is missing, truncated or malformed."""
