from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "sitevis.portal.accounts"
    label = "accounts"
    verbose_name = "users and tokens"

    def ready(self) -> None:
        from sitevis.portal.accounts import backends  # noqa: F401  (signal receivers)
