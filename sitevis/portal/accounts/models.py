"""API tokens (hashed) and the sites a user may see."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from sitevis.portal.inventory.models import Site


class SiteScope(models.Model):
    """The sites a user may see. A user without one sees no site (deny by default);
    superusers see every site."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="site_scope")
    all_sites = models.BooleanField(default=False)
    sites = models.ManyToManyField(Site, blank=True, related_name="+")

    def __str__(self) -> str:
        return f"sites of {self.user}"


class ApiToken(models.Model):
    """A machine's credential: `svp_<key_id>_<secret>`, shown once; only the secret's
    SHA-256 is stored (the secret is 256 random bits: no slow hash needed)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="api_tokens")
    key_id = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    description = models.CharField(max_length=200, blank=True)
    write_enabled = models.BooleanField(default=False)
    expires = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"token {self.key_id} of {self.user}"

    @property
    def expired(self) -> bool:
        return self.expires is not None and self.expires <= timezone.now()
