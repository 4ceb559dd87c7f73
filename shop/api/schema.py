"""Tell drf-spectacular how our authentication classes appear in the OpenAPI schema."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "shop.api.authentication.SessionAuthentication"
    name = "sessionCookie"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


class JWTCookieScheme(OpenApiAuthenticationExtension):
    target_class = "shop.api.authentication.JWTCookieAuthentication"
    name = "jwtCookie"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "access_token"}


class BearerScheme(OpenApiAuthenticationExtension):
    target_class = "shop.api.authentication.BearerAuthentication"
    name = "jwtBearer"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
