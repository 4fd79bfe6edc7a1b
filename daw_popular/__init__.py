"""daw-popular: the Popular Purchases service of the Discount Ascii Warehouse."""

__version__ = "0.1.0"
