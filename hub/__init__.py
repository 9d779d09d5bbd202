"""Unified Commerce CDC Hub."""

__version__ = "0.1.0"
