"""Option types of the `sitevis` command: each value checked before anything runs.

A bad value is one line on stderr and exit status 2; nothing is sent anywhere.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn, TypeVar

from sitevis import query
from sitevis.retention import rp_option

T = TypeVar("T")


class OneLineParser(argparse.ArgumentParser):
    """Bad options are one line on stderr and exit status 2, like every other refusal."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def checked(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type from a sitevis.query check: its own message, not argparse's."""
    def convert(text: str) -> T:
        try:
            return parse(text)
        except query.QueryError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return convert


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise query.QueryError(f"{text!r} is not a whole number") from None
    return query.count(number)


DURATION = checked(query.duration)
END = checked(lambda text: query.duration(text, allow_zero=True))
SITE = checked(lambda text: query.tag_value(text, "site"))
RP = checked(rp_option)
ROWS = checked(_positive)
