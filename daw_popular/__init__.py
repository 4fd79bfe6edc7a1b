"""daw-popular: the Popular Purchases service of the Discount Ascii Warehouse."""

__version__ = "0.1.0"


def compiled() -> bool:
    """True when the request path runs as compiled by mypyc (setup.py), not from its sources."""
    from . import service

    return not service.__file__.endswith(".py")
