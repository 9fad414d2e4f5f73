"""The one error type of bad input: printed by the CLI as one clear line, without a traceback."""


class UserError(Exception):
    """Bad input (a file, key or value): the message names it and says what to do."""
