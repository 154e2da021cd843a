"""The pages' units and time-range form: numbers as people read them, the range in force."""

from __future__ import annotations

import pytest

from sitevis.portal.pages import units


@pytest.mark.parametrize(("value", "text"), [
    (0, "0 bit/s"), (999, "999 bit/s"), (1000, "1.0 kbit/s"), (2_500_000, "2.5 Mbit/s"),
    (1.5e9, "1.5 Gbit/s"), (12.5, "12.5 bit/s"), (None, "—"), ("", "—")])
def test_bits_per_second_use_si_prefixes(value, text):
    assert units.bits_per_s(value) == text


def test_bytes_packets_ages_and_shares():
    assert units.nbytes(85_200) == "85.2 kB" and units.nbytes(None) == "—"
    assert units.packets_per_s(1500) == "1.5 kpps"
    assert units.age(None) == "never" and units.age(5) == "5 s ago"
    assert units.age(90) == "1.5 min ago" and units.age(7200) == "2.0 h ago"
    assert units.percent(0.999) == "99.9 %" and units.percent("") == "—"
