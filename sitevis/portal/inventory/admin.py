from django.contrib import admin

from sitevis.portal.inventory.models import Box, Interface, Site


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("name", "description")
    search_fields = ("name",)


class InterfaceInline(admin.TabularInline):
    model = Interface
    extra = 0
    readonly_fields = ("last_seen",)


@admin.register(Box)
class BoxAdmin(admin.ModelAdmin):
    list_display = ("name", "site", "address", "last_seen", "collector_version")
    list_filter = ("site",)
    search_fields = ("name", "address")
    readonly_fields = ("last_seen", "health", "collector_version")
    inlines = [InterfaceInline]
