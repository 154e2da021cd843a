"""sitevis Grafana dashboards as code (grafana-foundation-sdk); `python -m dashboards.build`."""
