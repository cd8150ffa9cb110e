"""paymesh: an open-source payment platform."""

__version__ = "0.1.0"
