"""Cross-cutting tables: API credentials, idempotency records, the audit log and alerts."""

from __future__ import annotations

import datetime
import decimal
import hashlib
import json
import secrets
import uuid
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from .choices import AlertSeverity, AlertStatus, Role

TOKEN_PREFIX = "mlm_"


def hash_token(token: str) -> str:
    """SHA-256 of a bearer token. Tokens carry 256 random bits, so a fast hash is enough."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiClientQuerySet(models.QuerySet):
    def active(self) -> ApiClientQuerySet:
        return self.filter(is_active=True)


class ApiClient(models.Model):
    """A bearer-token credential for a plugin or a service. Only the token's hash is stored."""

    name = models.CharField(max_length=100, unique=True)
    role = models.CharField(max_length=20, choices=Role.choices)
    merchant_id = models.UUIDField(
        null=True,
        blank=True,
        help_text="Required for the plugin role: the only merchant it may act for.",
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_hint = models.CharField(max_length=12, editable=False, help_text="First characters of the token.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiClientQuerySet.as_manager()

    class Meta:
        db_table = "api_clients"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(role="plugin") | models.Q(merchant_id__isnull=False),
                name="api_client_plugin_has_merchant",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.role})"

    # DRF treats the authenticated principal as request.user.
    is_authenticated = True
    is_anonymous = False

    @property
    def actor(self) -> str:
        return f"client:{self.name}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.role == Role.PLUGIN and self.merchant_id is None:
            raise ValidationError({"merchant_id": "The plugin role requires a merchant."})
        if self.role != Role.PLUGIN and self.merchant_id is not None:
            raise ValidationError({"merchant_id": "Only plugin credentials are bound to a merchant."})

    def set_new_token(self) -> str:
        """Generate a token, store its hash, and return the clear token (shown once)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.token_hash = hash_token(token)
        self.token_hint = token[:10]
        return token


class IdempotencyRecord(models.Model):
    """The first response given for an ``Idempotency-Key``; a replay returns it unchanged."""

    principal = models.CharField(max_length=160)
    key = models.CharField(max_length=255)
    request_fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "api_idempotency_records"
        constraints = [models.UniqueConstraint(fields=["principal", "key"], name="idempotency_principal_key")]

    def __str__(self) -> str:
        return f"{self.principal}:{self.key}"


GENESIS_HASH = "0" * 64


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _jsonb_string(text: str) -> str:
    out = []
    for char in text:
        if char in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[char])
        elif ord(char) < 0x20:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)  # PostgreSQL keeps every other character as it is (UTF-8)
    return '"' + "".join(out) + '"'


def jsonb_text(value: Any) -> str:
    """``value`` as PostgreSQL prints it as ``jsonb::text``.

    Object keys sorted by length, then bytes (jsonb's order); ``", "`` and ``": "`` separators;
    numbers as ``numeric`` prints them (``1e-05`` → ``0.00001``). The audit hash uses it on
    both sides, so the chain PostgreSQL writes is the chain Python verifies, and vice versa.
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(decimal.Decimal(repr(value)), "f")
    if isinstance(value, str):
        return _jsonb_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(jsonb_text(item) for item in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda key: (len(key.encode()), key.encode()))
        return "{" + ", ".join(f"{_jsonb_string(key)}: {jsonb_text(value[key])}" for key in keys) + "}"
    return _jsonb_string(str(value))


class AuditEntry(models.Model):
    """Append-only, hash-chained record of an ops action.

    ``entry_hash = sha256(prev_hash + hash_text(entry))`` so editing or removing any entry
    breaks every later link; ``verify_audit_log`` finds the first broken one. On PostgreSQL a
    trigger refuses UPDATE and DELETE outright, and computes the chain itself with the SQL
    function ``audit_log_entry_hash`` (migration 0003); ``compute_hash`` is the same rule in
    Python, byte for byte (JSON as PostgreSQL's ``jsonb::text``), so either side can verify.
    """

    actor = models.CharField(max_length=160)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)

    class Meta:
        db_table = "audit_log"
        ordering = ["-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object_idx")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_type}:{self.object_id}"

    def content(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": str(self.object_id),
            "before": self.before,
            "after": self.after,
            "created_at": self.created_at.isoformat(),
        }

    def hash_text(self) -> str:
        """What is hashed after ``prev_hash``: the SQL ``audit_log_entry_hash`` rule."""
        created = self.created_at.astimezone(datetime.UTC)
        return "\n".join(
            [
                self.actor,
                self.action,
                self.object_type,
                str(self.object_id),
                "null" if self.before is None else jsonb_text(self.before),
                "null" if self.after is None else jsonb_text(self.after),
                created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            ]
        )

    def compute_hash(self) -> str:
        return hashlib.sha256((self.prev_hash + self.hash_text()).encode()).hexdigest()

    @classmethod
    def record(
        cls,
        *,
        actor: str,
        action: str,
        obj: models.Model | None = None,
        object_type: str = "",
        object_id: str = "",
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one entry to the chain (inside the caller's transaction).

        On PostgreSQL the chain is computed by the ``audit_log_chain`` trigger, so entries
        written by SQL functions and by the application share one chain and one hash rule.
        """
        if obj is not None:
            object_type = object_type or obj._meta.label_lower
            object_id = object_id or str(obj.pk)
        entry = cls(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            # Round-trip through JSON so the stored value is what gets hashed.
            before=json.loads(_canonical(before)) if before is not None else None,
            after=json.loads(_canonical(after)) if after is not None else None,
            created_at=timezone.now(),
        )
        with transaction.atomic():
            if connection.vendor == "postgresql":
                entry.prev_hash = ""
                entry.entry_hash = f"pending-{uuid.uuid4().hex}"  # replaced by the trigger
                entry.save(force_insert=True)
                entry.refresh_from_db(fields=["prev_hash", "entry_hash"])
            else:
                last = cls.objects.order_by("-id").values_list("entry_hash", flat=True).first()
                entry.prev_hash = last or GENESIS_HASH
                entry.entry_hash = entry.compute_hash()
                entry.save(force_insert=True)
        return entry

    @classmethod
    def verify_chain(cls) -> tuple[int, int | None]:
        """Check every link, oldest first; return (entries checked, id of first broken entry)."""
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(_VERIFY_SQL)
                total, first_broken = cursor.fetchone()
            return _count_before(cls, first_broken, total), first_broken
        prev = GENESIS_HASH
        checked = 0
        for entry in cls.objects.order_by("id").iterator(chunk_size=2000):
            if entry.prev_hash != prev or entry.compute_hash() != entry.entry_hash:
                return checked, entry.pk
            prev = entry.entry_hash
            checked += 1
        return checked, None


def _count_before(model, first_broken: int | None, total: int) -> int:
    if first_broken is None:
        return total
    return model.objects.filter(id__lt=first_broken).count()


# The PostgreSQL rule (audit_log_entry_hash, installed by migration) recomputed for every row.
_VERIFY_SQL = """
WITH links AS (
    SELECT a.id,
           a.prev_hash,
           a.entry_hash,
           coalesce(lag(a.entry_hash) OVER (ORDER BY a.id), repeat('0', 64)) AS expected_prev,
           audit_log_entry_hash(a.prev_hash, a) AS recomputed
    FROM audit_log a
)
SELECT (SELECT count(*) FROM audit_log),
       (SELECT min(id) FROM links WHERE prev_hash <> expected_prev OR recomputed <> entry_hash)
"""


class Alert(models.Model):
    """An alert for ops (PagerDuty Events API v2). Stored whatever happens to its delivery."""

    kind = models.CharField(max_length=64, db_index=True)
    dedup_key = models.CharField(max_length=255)
    summary = models.CharField(max_length=1024)
    severity = models.CharField(max_length=16, choices=AlertSeverity.choices, default=AlertSeverity.ERROR)
    source = models.CharField(max_length=255, default="")
    custom_details = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=20, choices=AlertStatus.choices, default=AlertStatus.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "alerts"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"[{self.status}] {self.summary}"

    def pagerduty_payload(self) -> dict[str, Any]:
        return {
            "routing_key": settings.PAGERDUTY_ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": self.dedup_key,
            "payload": {
                "summary": self.summary[:1024],
                "severity": self.severity,
                "source": self.source or settings.ALERT_SOURCE,
                "timestamp": self.created_at.isoformat() if self.created_at else None,
                "component": "plugin-upgrades",
                "group": self.kind,
                "custom_details": self.custom_details,
            },
        }
