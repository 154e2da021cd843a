"""plotly.min.js from the plotly wheel's package data, as the static file vendor/plotly.min.js:
the charts' library arrives with pip, is served by whitenoise, and nothing is fetched from
outside at run time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PATH = "vendor/plotly.min.js"


def _package_data() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data"


class PlotlyFinder(BaseFinder):
    def check(self, **kwargs: Any) -> list[Any]:
        return []

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> Any:
        if path != PATH:
            return [] if find_all else None
        found = str(_package_data() / "plotly.min.js")
        return [found] if find_all else found

    def list(self, ignore_patterns: Any) -> Any:
        storage = FileSystemStorage(location=str(_package_data()))
        storage.prefix = "vendor"  # collectstatic puts the file under this prefix
        yield "plotly.min.js", storage
