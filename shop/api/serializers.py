"""Request and response bodies of the JSON API.

These classes are both what the views validate with and what the OpenAPI
schema shows, so a constraint written here is one the schema promises: a
field whose limits the schema cannot see (DRF refuses NUL characters in any
``CharField`` without saying so) gets a validator the schema can read.
"""

from django.core.validators import RegexValidator
from rest_framework import serializers
from rest_framework_simplejwt import serializers as jwt_serializers

from shop.cart import MAX_QUANTITY
from shop.jwt_cookies import LoginLimitedRefreshToken
from shop.models import Product

# DRF's CharField already refuses a NUL character (a 400); this copy of the
# rule is there for the schema, which shows a RegexValidator as a `pattern`.
NO_NUL_CHARACTER = RegexValidator(r"^[^\x00]*$", "Null characters are not allowed.")


class ProductSerializer(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ["id", "name", "price", "category"]


class CartItemSerializer(serializers.Serializer):
    product = serializers.IntegerField()
    quantity = serializers.IntegerField()


class CartSerializer(serializers.Serializer):
    items = CartItemSerializer(many=True)
    total = serializers.DecimalField(max_digits=10, decimal_places=2)


class QuantitySerializer(serializers.Serializer):
    quantity = serializers.IntegerField(min_value=0, max_value=MAX_QUANTITY)

    def to_internal_value(self, data):
        # "2" or 2.0 would be coerced silently; a quantity is a JSON integer.
        if isinstance(data, dict) and (
            isinstance(data.get("quantity"), bool) or not isinstance(data.get("quantity"), int)
        ):
            raise serializers.ValidationError({"quantity": ["Must be an integer."]})
        return super().to_internal_value(data)


class CredentialsSerializer(serializers.Serializer):
    # Not trimmed: " alice" is another username, and a password is exactly what was typed.
    username = serializers.CharField(
        min_length=1, max_length=150, trim_whitespace=False, validators=[NO_NUL_CHARACTER]
    )
    password = serializers.CharField(
        min_length=1,
        max_length=128,
        trim_whitespace=False,
        write_only=True,
        validators=[NO_NUL_CHARACTER],
    )


class OrderCreatedSerializer(serializers.Serializer):
    order = serializers.IntegerField()
    total = serializers.DecimalField(max_digits=10, decimal_places=2)


class WhoAmISerializer(serializers.Serializer):
    instance = serializers.CharField()
    mode = serializers.CharField()
    authenticated = serializers.BooleanField()
    username = serializers.CharField(allow_blank=True)
    session = serializers.DictField(
        help_text="Where this request's session lives: store, bytes (its size as stored), text; "
        "key (shortened), node, replication, expires_in where they apply; stored_as: null, or "
        "how the store holds it: preview (a prefix; of a signed value its payload only), "
        "decoded (what that payload decodes to with no key), encrypted (SESSION_ENCRYPTION_KEYS)."
    )


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


class LoggedInSerializer(serializers.Serializer):
    detail = serializers.CharField()
    username = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """Every error under ``/api/``: a sentence in ``detail``; field errors too for a 400."""

    detail = serializers.CharField()
    errors = serializers.JSONField(
        required=False, help_text="Per-field messages, when a request body failed validation."
    )


def refresh_token_field() -> serializers.CharField:
    # Not trimmed: a token is opaque, so "  " is simply not a token (401), not
    # an empty field (400); that is what lets the schema say minLength 1.
    return serializers.CharField(
        min_length=1, trim_whitespace=False, write_only=True, validators=[NO_NUL_CHARACTER]
    )


class RefreshSerializer(serializers.Serializer):
    refresh = refresh_token_field()


class TokenRefreshBody(jwt_serializers.TokenRefreshSerializer):
    """simplejwt's refresh, reading its field as the schema describes it."""

    refresh = refresh_token_field()
    token_class = LoginLimitedRefreshToken  # refused past SESSION_ABSOLUTE_S (shop/timeouts.py)


class TokenBlacklistBody(jwt_serializers.TokenBlacklistSerializer):
    """simplejwt's blacklisting, reading its field as the schema describes it."""

    refresh = refresh_token_field()


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()
