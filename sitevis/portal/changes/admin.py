from django.contrib import admin

from sitevis.portal.changes.models import ObjectChange


@admin.register(ObjectChange)
class ObjectChangeAdmin(admin.ModelAdmin):
    """Read-only: the log is written by the portal, never edited."""

    list_display = ("time", "user_name", "action", "object_type", "object_repr", "source_ip")
    list_filter = ("action", "object_type")
    search_fields = ("object_repr", "user_name", "request_id")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
