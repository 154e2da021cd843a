"""sitevis-collector: the box agent of sitevis."""

__version__ = "0.1.0"
