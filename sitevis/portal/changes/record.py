"""Every save and delete of a tracked model becomes an ObjectChange (before/after), with
secrets left out. Connected in apps.py; `update()` and bulk writes bypass it on purpose:
only the refresh of observed health uses them."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.signals import post_delete, post_save, pre_save

from sitevis.portal.changes import context
from sitevis.portal.changes.models import ObjectChange

# Never in the change log (nor anywhere a response could show it): a webhook's signing
# secret is left out too, so changing only the secret changes nothing the log shows.
SECRET_FIELDS = frozenset({"password", "digest", "secret"})
# Observed by the refresh, not changed by anyone: saved without a change-log row.
OBSERVED_FIELDS = frozenset({"last_seen", "health", "collector_version", "last_used",
                             "last_login"})


def snapshot(instance: models.Model) -> dict[str, Any]:
    """The instance's own fields as JSON values (foreign keys as ids), no secrets."""
    data = {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields
            if f.attname not in SECRET_FIELDS}
    if instance.pk is not None:
        for m2m in instance._meta.many_to_many:
            data[m2m.name] = sorted(obj.pk for obj in getattr(instance, m2m.name).all())
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def _label(instance: models.Model) -> str:
    return f"{instance._meta.app_label}.{instance._meta.model_name}"


def _write(action: str, instance: models.Model, before: dict | None,
           after: dict | None) -> None:
    actor = context.current()
    ObjectChange.objects.create(
        user=actor.user(), user_name=actor.user_name(), source_ip=actor.source_ip,
        request_id=actor.request_id, action=action, object_type=_label(instance),
        object_id=str(instance.pk), object_repr=str(instance)[:255], before=before,
        after=after)


def _pre_save(sender: Any, instance: Any, **kwargs: Any) -> None:
    old = sender._default_manager.filter(pk=instance.pk).first() if instance.pk else None
    instance._change_before = snapshot(old) if old is not None else None


def _post_save(sender: type, instance: models.Model, created: bool, raw: bool = False,
               **kwargs: Any) -> None:
    if raw:  # loaddata
        return
    before = getattr(instance, "_change_before", None)
    after = snapshot(instance)
    if before is not None and not created:
        changed = {k for k in after if before.get(k) != after[k]}
        if changed <= OBSERVED_FIELDS:
            return
    _write("create" if created else "update", instance, None if created else before, after)


def _post_delete(sender: type, instance: models.Model, **kwargs: Any) -> None:
    _write("delete", instance, snapshot(instance), None)


def track(*models_: type[models.Model]) -> None:
    for model in models_:
        uid = f"changes:{model._meta.label}"
        pre_save.connect(_pre_save, sender=model, dispatch_uid=f"{uid}:pre")
        post_save.connect(_post_save, sender=model, dispatch_uid=f"{uid}:post")
        post_delete.connect(_post_delete, sender=model, dispatch_uid=f"{uid}:delete")
