"""Sites, their boxes and the boxes' interfaces: the names the collectors write as tags."""

from __future__ import annotations

from django.db import models

from sitevis.portal.inventory import validators


class Site(models.Model):
    name = models.CharField(max_length=255, unique=True, validators=[validators.tag_name])
    description = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Box(models.Model):
    """A host that runs a collector; `name` is its `box` tag (collector_box)."""

    name = models.CharField(max_length=255, validators=[validators.tag_name])
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="boxes")
    address = models.CharField(max_length=255, blank=True, validators=[validators.address],
                               help_text="how Ansible reaches it (ansible_host)")
    groups = models.JSONField(default=list, blank=True, validators=[validators.group_list],
                              help_text="Ansible groups besides `boxes`")
    # Observed, not edited: filled from the collector's self-metrics (`portal refresh`).
    collector_version = models.CharField(max_length=64, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    health = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["site__name", "name"]
        verbose_name_plural = "boxes"
        constraints = [models.UniqueConstraint(fields=["site", "name"],
                                               name="box_name_unique_in_site")]

    def __str__(self) -> str:
        return self.name


class Interface(models.Model):
    box = models.ForeignKey(Box, on_delete=models.CASCADE, related_name="interfaces")
    name = models.CharField(max_length=255, validators=[validators.tag_name])
    last_seen = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["box__name", "name"]
        constraints = [models.UniqueConstraint(fields=["box", "name"],
                                               name="interface_name_unique_in_box")]

    def __str__(self) -> str:
        return f"{self.box.name}:{self.name}"
