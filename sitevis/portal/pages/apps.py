from django.apps import AppConfig


class PagesConfig(AppConfig):
    """The portal's pages: overview, box, flow explorer, packets (HTML over sitevis.query)."""

    name = "sitevis.portal.pages"
    label = "pages"
