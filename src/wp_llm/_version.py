"""The distribution's version, kept apart so the client and the service import it without cycles."""

__version__ = "0.1.0"
