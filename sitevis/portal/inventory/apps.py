from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "sitevis.portal.inventory"
    label = "inventory"
    verbose_name = "sites and boxes"
