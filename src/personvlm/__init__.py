"""PersonVLM: a small vision-language model that describes people in surveillance crops."""

__version__ = "0.1.0"
