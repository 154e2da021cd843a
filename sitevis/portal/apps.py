from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The project itself: management commands (serve, createuser, import, refresh) and
    the login template."""

    name = "sitevis.portal"
    label = "portal"
    verbose_name = "sitevis portal"

    def ready(self) -> None:
        from sitevis.portal.api import schema  # noqa: F401  (registers the token scheme)
