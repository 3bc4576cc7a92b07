"""lmforge: the whole training flow of a language model, measured and explained."""

__version__ = "0.1.0"
