"""sitevis portal: a Django project with a REST API over the site's boxes and traffic.

Its own database (SQLite by default, PostgreSQL supported) holds sites, boxes, users,
tokens and the change log; flow data stays in InfluxDB and is read with the controller's
one InfluxQL builder (sitevis.query). Installed with the `portal` extra; run through
`sitevis portal ...` (sitevis/portal/manage.py).
"""
