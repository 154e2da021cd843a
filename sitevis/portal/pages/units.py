"""Numbers as people read them: bits/s and packets/s with SI prefixes, bytes in kB/MB
(1000-based, as `sitevis top` prints them), ages in s/min/h/d."""

from __future__ import annotations

from sitevis.talkers import human_bytes

PREFIXES = ("", "k", "M", "G", "T", "P")


def si(value: float | str | None, unit: str) -> str:
    if value is None or value == "":  # "": a template's missing attribute
        return "—"
    scaled = float(value)
    for prefix in PREFIXES:
        if abs(scaled) < 1000 or prefix == PREFIXES[-1]:
            digits = 0 if prefix == "" and scaled == int(scaled) else 1
            return f"{scaled:.{digits}f} {prefix}{unit}"
        scaled /= 1000
    raise AssertionError("unreachable")


def bits_per_s(value: float | str | None) -> str:
    return si(value, "bit/s")


def packets_per_s(value: float | str | None) -> str:
    return si(value, "pps")


def nbytes(value: float | str | None) -> str:
    return "—" if value is None or value == "" else human_bytes(float(value))


def age(seconds: float | str | None) -> str:
    if seconds is None or seconds == "":
        return "never"
    seconds = max(0.0, float(seconds))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit} ago"
    return f"{seconds:.0f} s ago"


def percent(value: float | str | None) -> str:
    return "—" if value is None or value == "" else f"{float(value) * 100:.1f} %"
