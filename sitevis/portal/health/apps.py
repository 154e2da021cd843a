from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "sitevis.portal.health"
    label = "health"
    verbose_name = "health issues"

    def ready(self) -> None:
        from sitevis.portal.changes.record import track
        from sitevis.portal.health.models import Issue, Webhook

        # Opening, acknowledging and resolving an issue are saves: the change log has them.
        # The evaluator's count/last-seen bumps are update()s, observation, not changes.
        # Webhooks are logged without their secret (changes/record.py, SECRET_FIELDS).
        track(Issue, Webhook)
