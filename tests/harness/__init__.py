"""Real parts for tests: a private influxd, network namespaces joined by veth, BCC."""
