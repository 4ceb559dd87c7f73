"""Request and response bodies of the JSON API."""

from rest_framework import serializers

from shop.cart import MAX_QUANTITY
from shop.models import Product


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
    username = serializers.CharField(max_length=150, trim_whitespace=False)
    password = serializers.CharField(max_length=128, trim_whitespace=False, write_only=True)


class OrderCreatedSerializer(serializers.Serializer):
    order = serializers.IntegerField()
    total = serializers.DecimalField(max_digits=10, decimal_places=2)


class WhoAmISerializer(serializers.Serializer):
    instance = serializers.CharField()
    mode = serializers.CharField()
    authenticated = serializers.BooleanField()
    username = serializers.CharField(allow_blank=True)
    session = serializers.DictField()


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


class RefreshSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()
