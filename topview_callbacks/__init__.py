"""Receive Topview AI task notices in Django, exactly once."""

__version__ = "0.1.0"
