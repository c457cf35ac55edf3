"""Operator commands: data in ``commands``, presentation in ``render`` and ``top``."""
