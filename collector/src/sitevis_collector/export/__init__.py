"""From a DrainResult to InfluxDB: points (aggregate), line protocol (lineproto),
the disk spool (spool) and delivery with retries (delivery)."""
