"""Operator commands beyond `run`: `check` (readiness) and `top`."""
