"""Forms of the rollout-control page.

The fields here only describe the HTML inputs. Validation is the API's own
(``RolloutCreateSerializer``, ``RolloutPatchSerializer``): the form turns what a browser sends
(strings) into the JSON types the serializer expects, runs it, and hangs its errors on the
matching inputs. A rule changed in the serializer therefore changes the page too.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms

from .api.serializers import PauseSerializer, RolloutCreateSerializer, RolloutPatchSerializer
from .choices import RolloutStrategy

_LIST_SPLIT = re.compile(r"[\s,;]+")


def _number(raw: str) -> Any:
    """A browser number as the JSON number the API takes; anything else is passed through
    unchanged so the serializer reports it with its own message."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return raw
    if not value.is_finite():
        return raw
    return int(value) if value == value.to_integral_value() and "." not in raw else float(raw)


def _words(raw: str) -> list[str]:
    return [part for part in _LIST_SPLIT.split(raw or "") if part]


class SerializerForm(forms.Form):
    """A form whose ``clean()`` is a DRF serializer: one set of rules for API and page."""

    serializer_class: type
    serializer = None

    def to_payload(self, cleaned: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        serializer = self.serializer_class(data=self.to_payload(cleaned))
        if serializer.is_valid():
            self.serializer = serializer
            return cleaned
        for field, messages in serializer.errors.items():
            target = field if field in self.fields else None
            for message in messages if isinstance(messages, list) else [messages]:
                self.add_error(target, str(message))
        return cleaned


class RolloutCreateForm(SerializerForm):
    """Start a rollout: plugin, version, strategy, targets, percentage, threshold, Sira."""

    serializer_class = RolloutCreateSerializer

    # Every input is optional here: whether a value is required is the serializer's rule.
    plugin_name = forms.CharField(
        label="Plugin",
        required=False,
        help_text="Lower-case name, e.g. woocommerce.",
        widget=forms.TextInput(
            attrs={
                "list": "known-plugins",
                "autocomplete": "off",
                "spellcheck": "false",
                "aria-required": "true",
            }
        ),
    )
    version = forms.CharField(
        label="Version",
        required=False,
        help_text="The release to roll out, e.g. 4.0.0.",
        widget=forms.TextInput(
            attrs={"list": "known-versions", "autocomplete": "off", "spellcheck": "false"}
        ),
    )
    strategy = forms.CharField(
        label="Strategy",
        required=False,
        initial=RolloutStrategy.RANDOM,
        widget=forms.Select(choices=RolloutStrategy.choices),
    )
    target_countries = forms.CharField(
        label="Target countries",
        required=False,
        help_text="Geographic strategy only: ISO codes, e.g. US, FR, SN.",
        widget=forms.TextInput(attrs={"placeholder": "US, FR, SN", "spellcheck": "false"}),
    )
    target_tiers = forms.CharField(
        label="Target tiers",
        required=False,
        help_text="Merchant-tier strategy only, e.g. enterprise, pro.",
        widget=forms.TextInput(attrs={"placeholder": "enterprise, pro", "spellcheck": "false"}),
    )
    percentage = forms.CharField(
        label="Percentage of merchants",
        required=False,
        initial="5",
        help_text="Start small: a 5 % canary is typical.",
        widget=forms.NumberInput(
            attrs={"min": "0", "max": "100", "step": "any", "inputmode": "decimal", "aria-required": "true"}
        ),
    )
    error_threshold = forms.CharField(
        label="Error threshold",
        required=False,
        initial="0.03",
        help_text="Share of failed upgrades that makes Sira pause the rollout: 0.03 = 3 %.",
        widget=forms.NumberInput(attrs={"min": "0", "max": "1", "step": "0.0001", "inputmode": "decimal"}),
    )
    sira_monitoring = forms.BooleanField(
        label="Sira monitoring",
        required=False,
        initial=True,
        help_text="Pause automatically when the error rate exceeds the threshold.",
    )
    wilson_gate = forms.BooleanField(
        label="Statistical gate (Wilson 95 %)",
        required=False,
        initial=False,
        help_text="Pause only when the lower bound of the error rate's 95 % interval exceeds the threshold: "
        "a small sample with one unlucky failure does not pause the rollout.",
    )

    def to_payload(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "plugin_name": (cleaned.get("plugin_name") or "").strip(),
            "version": (cleaned.get("version") or "").strip(),
            "strategy": cleaned.get("strategy") or RolloutStrategy.RANDOM,
            # A checkbox that is not ticked is simply absent from the POST: that means off.
            "sira_monitoring": bool(cleaned.get("sira_monitoring")),
            "wilson_gate": bool(cleaned.get("wilson_gate")),
        }
        percentage = _number(cleaned.get("percentage", ""))
        if percentage is not None:  # absent, so the serializer says "required", not "null"
            payload["percentage"] = percentage
        # Convenience only: codes are typed in any case; the serializer still checks them.
        countries = [c.upper() for c in _words(cleaned.get("target_countries", ""))]
        tiers = [t.lower() for t in _words(cleaned.get("target_tiers", ""))]
        if countries:
            payload["target_countries"] = countries
        if tiers:
            payload["target_tiers"] = tiers
        threshold = _number(cleaned.get("error_threshold", ""))
        if threshold is not None:
            payload["error_threshold"] = threshold
        return payload

    def to_model_fields(self) -> dict[str, Any]:
        return self.serializer.to_model_fields()


class PercentageForm(SerializerForm):
    """A percentage step (+10 %, +25 %, 100 %) posted by a button.

    ``expected`` is the percentage the operator saw: if someone else changed the rollout
    meanwhile, the step is refused rather than applied to a number nobody looked at.
    """

    serializer_class = RolloutPatchSerializer

    percentage = forms.CharField(required=False)
    expected = forms.CharField(required=False)

    def to_payload(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        percentage = _number(cleaned.get("percentage", ""))
        return {} if percentage is None else {"percentage": percentage}

    @property
    def percentage_value(self) -> Decimal:
        return self.serializer.validated_data["percentage"]

    @property
    def expected_value(self) -> Decimal | None:
        raw = (self.cleaned_data.get("expected") or "").strip()
        try:
            return Decimal(raw) if raw else None
        except InvalidOperation:
            return None


class PauseForm(SerializerForm):
    """An optional reason for pausing, kept in the audit log (the API's pause rules)."""

    serializer_class = PauseSerializer

    reason = forms.CharField(required=False)

    def to_payload(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        return {"reason": (cleaned.get("reason") or "").strip()}

    @property
    def reason_value(self) -> str | None:
        return self.serializer.validated_data.get("reason") or None
