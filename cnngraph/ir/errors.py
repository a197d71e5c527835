"""Errors raised by cnngraph: each names the layer, the rule and the numbers."""


class CnnGraphError(ValueError):
    """Base class of every error cnngraph raises on bad input."""


class ShapeError(CnnGraphError):
    """A layer cannot be applied to its input.

    >>> str(ShapeError("conv1", "groups must divide in_channels", "groups=3, in_channels=64"))
    'conv1: groups must divide in_channels (groups=3, in_channels=64)'
    """

    def __init__(self, layer: str, rule: str, numbers: str = ""):
        self.layer, self.rule, self.numbers = layer, rule, numbers
        msg = f"{layer}: {rule}"
        if numbers:
            msg += f" ({numbers})"
        super().__init__(msg)


class GraphError(CnnGraphError):
    """The graph itself is malformed: a cycle, a dangling input, an unknown op."""


class FitWarning(UserWarning):
    """A stride does not fit the padded input exactly; the output size was floored."""


class InputError(CnnGraphError):
    """A value the user gave cannot be used: a size that is not an integer expression, a file
    that is not what it claims, an option out of range. The message names the value and the rule."""


class UserCodeError(Exception):
    """An exception raised inside the user's own model file (``file.py:function``); carries
    the traceback text of their code, which the command line prints as Python would."""

    def __init__(self, traceback_text: str):
        super().__init__(traceback_text)
        self.traceback_text = traceback_text
