"""Building blocks for output serializers: what the API sends is what the schema publishes."""

from __future__ import annotations

from django.db import models
from rest_framework import serializers

from .fields import IsoDateTimeField


class OutputModelSerializer(serializers.ModelSerializer):
    """A read-only model serializer; datetimes as ``isoformat()`` (the API's format since the seed)."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateTimeField: IsoDateTimeField,
    }

    def build_standard_field(self, field_name, model_field):
        field_class, field_kwargs = super().build_standard_field(field_name, model_field)
        field_kwargs["read_only"] = True
        for key in ("validators", "max_length", "min_length", "max_value", "min_value", "allow_blank"):
            field_kwargs.pop(key, None)
        return field_class, field_kwargs


def envelope(name: str, ok: bool | None = True, **fields: serializers.Field) -> type[serializers.Serializer]:
    """A response serializer ``{"ok": true, <fields>}`` (``ok=None``: no ``ok`` key), named ``name``."""
    attrs: dict = {}
    if ok is not None:
        attrs["ok"] = serializers.BooleanField(read_only=True, help_text="Always true.")
    attrs.update(fields)
    attrs["Meta"] = type("Meta", (), {"ref_name": name})
    return type(name, (serializers.Serializer,), attrs)
