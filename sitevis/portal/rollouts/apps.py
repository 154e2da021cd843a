from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    name = "sitevis.portal.rollouts"
    label = "rollouts"
    verbose_name = "rollouts"
