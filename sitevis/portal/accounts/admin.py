from django.contrib import admin

from sitevis.portal.accounts.models import ApiToken, SiteScope


@admin.register(SiteScope)
class SiteScopeAdmin(admin.ModelAdmin):
    list_display = ("user", "all_sites")
    filter_horizontal = ("sites",)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are made through the API (the secret is shown once there); here they can
    be looked at, limited and revoked."""

    list_display = ("key_id", "user", "description", "write_enabled", "expires", "last_used")
    readonly_fields = ("key_id", "user", "created", "last_used")
    exclude = ("digest",)

    def has_add_permission(self, request, obj=None):
        return False
