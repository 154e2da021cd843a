from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "sitevis.portal.health"
    label = "health"
    verbose_name = "health issues"

    def ready(self) -> None:
        from sitevis.portal.changes.record import track
        from sitevis.portal.health.models import Issue

        # Opening, acknowledging and resolving an issue are saves: the change log has them.
        # The evaluator's count/last-seen bumps are update()s, observation, not changes.
        # Webhooks are not tracked: the change log would keep their secrets.
        track(Issue)
