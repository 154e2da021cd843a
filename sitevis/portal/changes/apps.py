from django.apps import AppConfig, apps


class ChangesConfig(AppConfig):
    name = "sitevis.portal.changes"
    label = "changes"
    verbose_name = "change log"

    def ready(self) -> None:
        from sitevis.portal.changes.record import track

        track(*(apps.get_model(label) for label in (
            "inventory.Site", "inventory.Box", "inventory.Interface",
            "accounts.ApiToken", "accounts.SiteScope", "auth.User", "auth.Group")))
