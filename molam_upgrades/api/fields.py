"""The project's fields, in one module: serializer fields for bodies and responses, and the
query-string filter fields the API and the dashboards share."""

from __future__ import annotations

import re
from datetime import UTC

import django_filters
from django import forms
from django.core.validators import RegexValidator
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..versions import PLUGIN_NAME_RE, VERSION_MAX_LENGTH, VERSION_PATTERN, is_valid_version


class PluginNameField(serializers.CharField):
    default_error_messages = {
        "invalid_name": "Must match ^[a-z0-9][a-z0-9_-]{{0,63}}$ (lower-case letters, digits, '_' and '-').",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)
        # Published as the schema's ``pattern`` (drf-spectacular reads RegexValidator).
        self.validators.append(RegexValidator(PLUGIN_NAME_RE))

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not PLUGIN_NAME_RE.match(value):
            self.fail("invalid_name")
        return value


class VersionField(serializers.CharField):
    default_error_messages = {
        "invalid_version": "Must be a dotted numeric version such as 4.0.0 or 1.8.0-rc.1 (at most 64 characters).",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", VERSION_MAX_LENGTH)
        super().__init__(**kwargs)
        # Published as the schema's ``pattern``; is_valid_version stays the check.
        self.validators.append(RegexValidator(VERSION_PATTERN))

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not is_valid_version(value):
            self.fail("invalid_version")
        return value


class StrictBooleanField(serializers.BooleanField):
    """Accepts JSON true/false only (not "yes", 1 …) in bodies."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)


class StrictIntegerField(serializers.IntegerField):
    """Accepts JSON integers only (not "12" or 12.5) in bodies."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictUUIDField(serializers.UUIDField):
    """A UUID given as a string (DRF would also turn a JSON integer into a UUID)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class Sha256Field(serializers.CharField):
    default_error_messages = {"invalid_sha": "Must be 64 lower-case hexadecimal characters."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        value = super().to_internal_value(data).lower()
        if not SHA256_RE.match(value):
            self.fail("invalid_sha")
        return value


class TextField(serializers.CharField):
    """A JSON string only (DRF's CharField would also turn a number into text)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ReasonField(TextField):
    """A free-text reason or error message, 2,000 characters unless told otherwise."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 2000)
        super().__init__(**kwargs)


@extend_schema_field(OpenApiTypes.NUMBER)
class NumberField(serializers.Field):
    """An output number sent as computed (an int stays an int, a float a float)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return value


class AwareDateTimeField(serializers.DateTimeField):
    """An input time with its offset (``Z`` or ``+01:00``), as OpenAPI's ``date-time`` says: a time
    without one would be read in the server's zone, silently."""

    default_error_messages = {"naive": "Give the time zone offset, e.g. 2026-11-29T08:00:00Z."}

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is None:
                self.fail("naive")
        return super().to_internal_value(value)


class IsoDateTimeField(serializers.DateTimeField):
    """Output as ``datetime.isoformat()`` (``…+00:00``), the format the API has always sent."""

    def to_representation(self, value):
        return value.isoformat() if value else None


# --- query-string filters (django-filter), shared by the API and the dashboards ----------------

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


class BooleanQueryField(forms.Field):
    """true/false (also 1/0, yes/no) in a query string; anything else is an error, not "no filter".

    Bodies are stricter (``StrictBooleanField``: JSON true/false only): a query string has no types.
    """

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise forms.ValidationError("Use true or false.", code="invalid")


class BooleanQueryFilter(django_filters.BooleanFilter):
    field_class = BooleanQueryField


class UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 time, turned to UTC before it reaches the query: ISO 8601 allows offsets up to
    ±23:59, PostgreSQL only ±15:59, and a time past year 9999 in UTC is out of range (a 400)."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("Out of range.", code="invalid") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField
