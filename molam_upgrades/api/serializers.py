"""Building blocks for output serializers: what the API sends is what the schema publishes."""

from __future__ import annotations

from django.db import models
from rest_framework import serializers

from .fields import IsoDateTimeField


class SharedFieldsMixin:
    """Fields built and bound once per class, then shared by every instance of the class.

    DRF builds a serializer's fields for each instance (deep copies of the declared fields, and
    for a ``ModelSerializer`` a new introspection of the model), which costs more than the
    request on the report and decision paths. A field only holds what ``bind()`` set (its
    name, source and parent); reading (``to_representation``) and validating a value
    (``run_validation``) do not change it. So the fields are bound once, to a prototype
    instance of the class, and every instance reads them from there; each instance keeps its
    own data, errors and validated data.

    Only for serializers whose fields do not read ``self.context`` (a shared field's context is
    the prototype's, empty) and, when used for input, that nest no ``many=True`` serializer
    (``ListSerializer`` stores each item on its child while validating it).
    """

    @property
    def fields(self):
        cls = type(self)
        shared = cls.__dict__.get("_shared_fields")
        if shared is None:
            shared = serializers.Serializer.fields.func(cls(context={}))
            cls._shared_fields = shared  # a race builds it twice, both equal
        return shared


class OutputModelSerializer(SharedFieldsMixin, serializers.ModelSerializer):
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
    return type(name, (SharedFieldsMixin, serializers.Serializer), attrs)
