"""OpenAPI post-processing: with ?brief only the brief fields come back, so the object
schemas require only those (id, url, display, name); the rest stay documented."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

BRIEF_REQUIRED = ["id", "url", "display", "name"]
BRIEF_COMPONENTS = ("Site", "Box", "Interface")


def brief_fields_optional(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    schemas = result.get("components", {}).get("schemas", {})
    for name in BRIEF_COMPONENTS:
        if name in schemas and "required" in schemas[name]:
            schemas[name]["required"] = [f for f in schemas[name]["required"]
                                         if f in BRIEF_REQUIRED]
    return result


class TokenScheme(OpenApiAuthenticationExtension):
    """`Authorization: Token svp_...` in the schema (and Swagger UI's Authorize)."""

    target_class = "sitevis.portal.accounts.auth.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "Token svp_<key id>_<secret>"}
