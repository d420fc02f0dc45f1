"""Filter fields shared by the API and the dashboards."""

from __future__ import annotations

import django_filters
from django import forms

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


class StrictBooleanField(forms.Field):
    """true/false (also 1/0, yes/no); anything else is an error rather than "no filter"."""

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise forms.ValidationError("Use true or false.", code="invalid")


class StrictBooleanFilter(django_filters.Filter):
    field_class = StrictBooleanField
