"""Object representations: full, and brief (?brief) for pickers and references."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from sitevis.portal.accounts import roles
from sitevis.portal.accounts.models import ApiToken
from sitevis.portal.changes.models import ObjectChange
from sitevis.portal.inventory import validators
from sitevis.portal.inventory.models import Box, Interface, Site

BRIEF = ["id", "url", "display", "name"]


def _in_scope(request: Any, site: Site) -> None:
    allowed = roles.allowed_site_names(request.user)
    if allowed is not None and site.name not in allowed:
        raise serializers.ValidationError("not one of your sites")


class SiteSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:site-detail")
    display = serializers.CharField(source="name", read_only=True)

    class Meta:
        model = Site
        fields = [*BRIEF, "description", "created", "updated"]


class BriefSiteSerializer(SiteSerializer):
    class Meta(SiteSerializer.Meta):
        fields = BRIEF


class BoxSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:box-detail")
    display = serializers.SerializerMethodField()
    site_name = serializers.CharField(source="site.name", read_only=True)
    groups = serializers.ListField(
        child=serializers.CharField(max_length=100, validators=[validators.group_name]),
        max_length=validators.MAX_GROUPS, required=False)
    health = serializers.DictField(read_only=True)

    class Meta:
        model = Box
        fields = [*BRIEF, "site", "site_name", "address", "groups", "collector_version",
                  "last_seen", "health", "created", "updated"]
        read_only_fields = ["collector_version", "last_seen", "health"]

    def get_display(self, box: Box) -> str:
        return f"{box.name} ({box.site.name})"

    def validate_site(self, site: Site) -> Site:
        _in_scope(self.context["request"], site)
        return site

    def validate_groups(self, groups: list[str]) -> list[str]:
        if len(set(groups)) != len(groups):
            raise serializers.ValidationError("groups must not repeat")
        return groups


class BriefBoxSerializer(BoxSerializer):
    class Meta(BoxSerializer.Meta):
        fields = BRIEF


class InterfaceSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:interface-detail")
    display = serializers.SerializerMethodField()
    box_name = serializers.CharField(source="box.name", read_only=True)

    class Meta:
        model = Interface
        fields = [*BRIEF, "box", "box_name", "last_seen"]
        read_only_fields = ["last_seen"]

    def get_display(self, interface: Interface) -> str:
        return str(interface)

    def validate_box(self, box: Box) -> Box:
        _in_scope(self.context["request"], box.site)
        return box


class BriefInterfaceSerializer(InterfaceSerializer):
    class Meta(InterfaceSerializer.Meta):
        fields = BRIEF


class ChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = ObjectChange
        fields = ["id", "time", "user_name", "source_ip", "request_id", "action",
                  "object_type", "object_id", "object_repr", "before", "after"]


class TokenSerializer(serializers.ModelSerializer):
    """A token as listed: never its secret."""

    class Meta:
        model = ApiToken
        fields = ["id", "key_id", "description", "write_enabled", "expires", "created",
                  "last_used"]
        read_only_fields = ["key_id", "created", "last_used"]


class NewTokenSerializer(TokenSerializer):
    """The answer to making a token: the only time its secret is shown."""

    token = serializers.CharField(read_only=True)

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]


class ProvisionSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, write_only=True,
                                     style={"input_type": "password"})
    description = serializers.CharField(max_length=200, required=False, default="")
    write_enabled = serializers.BooleanField(required=False, default=False)
    expires = serializers.DateTimeField(required=False, allow_null=True, default=None)


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.CharField(allow_null=True)
    sites = serializers.ListField(child=serializers.CharField(), allow_null=True,
                                  help_text="null: every site")
