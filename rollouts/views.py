"""The rollout-control page: start rollouts, watch them, step them up, pause, resume, complete.

Every action is a POST that calls the same ``rollouts.services`` function as the API, with the
logged-in person as the audit actor, then redirects back to the page (post/redirect/get) with a
message. A move the rollout's state does not allow (a 409 in the API) becomes an error message.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from molam_upgrades.exceptions import DomainError
from molam_upgrades.models import Alert
from molam_upgrades.web import OpsPageMixin

from . import services
from .choices import OPEN_STATES, TERMINAL_STATES, RolloutStatus
from .forms import PauseForm, PercentageForm, RolloutCreateForm
from .metrics import RolloutErrorRate, attach_error_rates
from .models import Release, Rollout
from .monitoring import sira_freshness

HUNDRED = Decimal("100")
PAGE_SIZE = 25


@dataclass(frozen=True)
class Step:
    """One percentage button: its label, the percentage it sets, and whether it asks first."""

    label: str
    percentage: Decimal
    confirm: bool = False


@dataclass
class RolloutCard:
    """An open rollout with what the page shows about it, computed once in Python."""

    rollout: Rollout
    error_rate: Decimal
    steps: list[Step]

    @property
    def health(self) -> RolloutErrorRate:
        return self.rollout.health

    @property
    def percentage_display(self) -> str:
        """25.00 → "25", 12.50 → "12.5"."""
        return f"{self.rollout.rollout_percentage.normalize():f}"

    @property
    def error_rate_pct(self) -> Decimal:
        return self.error_rate * 100

    @property
    def lower_bound_pct(self) -> float:
        """Wilson 95 % lower bound of the error rate, shown next to the raw rate."""
        return self.health.lower_bound * 100

    @property
    def threshold_pct(self) -> Decimal:
        return self.rollout.error_threshold * 100

    @property
    def above_threshold(self) -> bool:
        return self.rollout.error_rate_above_threshold

    @property
    def sample_pending(self) -> bool:
        """Sira judges a rollout only once ``min_sample_size`` merchants have reported."""
        return self.health.merchants < self.rollout.min_sample_size

    @property
    def needs_attention(self) -> bool:
        return self.above_threshold or self.rollout.auto_paused

    @property
    def targets(self) -> str:
        rollout = self.rollout
        if rollout.target_countries:
            return ", ".join(rollout.target_countries)
        if rollout.target_tiers:
            return ", ".join(rollout.target_tiers)
        return "All merchants"


def steps_for(percentage: Decimal) -> list[Step]:
    """+10 %, +25 % (capped at 100) and 100 %; a step that would change nothing is left out."""
    steps = []
    for increment in (Decimal("10"), Decimal("25")):
        target = min(HUNDRED, percentage + increment).quantize(Decimal("0.01"))
        if target != percentage:
            steps.append(Step(f"+{increment} %", target))
    if percentage < HUNDRED:
        steps.append(Step("100 %", HUNDRED.quantize(Decimal("0.01")), confirm=True))
    return steps


class RolloutControlView(OpsPageMixin):
    """``/ops/rollout-control``: GET shows the page, POST starts a rollout."""

    template_name = "rollouts/rollout_control.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.render_page(RolloutCreateForm() if self.can_operate else None)

    def post(self, request: HttpRequest) -> HttpResponse:
        form = RolloutCreateForm(request.POST)
        if form.is_valid():
            try:
                rollout = services.create_rollout(actor=self.actor, **form.to_model_fields())
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(
                    request,
                    f"Started the {rollout.plugin_name} {rollout.version} rollout at "
                    f"{rollout.rollout_percentage.normalize():f} %.",
                )
                return redirect(f"{reverse('rollout-control')}#rollout-{rollout.pk}")
        # Errors are shown next to their inputs; 200 keeps the page's normal look.
        return self.render_page(form)

    def render_page(self, form: RolloutCreateForm | None) -> HttpResponse:
        open_rollouts = attach_error_rates(
            list(Rollout.objects.filter(status__in=OPEN_STATES).order_by("plugin_name", "-created_at"))
        )
        cards = [
            RolloutCard(rollout=r, error_rate=r.health.error_rate, steps=steps_for(r.rollout_percentage))
            for r in open_rollouts
        ]
        # A fleet can run hundreds of rollouts at once: the ones that need a look come first
        # (above threshold, paused by Sira, paused), a plugin filter narrows them, and the page
        # shows PAGE_SIZE at a time.
        cards.sort(key=lambda c: (not c.needs_attention, c.rollout.status != RolloutStatus.PAUSED))
        plugin_filter = (self.request.GET.get("plugin") or "").strip().lower()[:64]
        if plugin_filter:
            cards = [c for c in cards if plugin_filter in c.rollout.plugin_name]
        page = Paginator(cards, PAGE_SIZE).get_page(self.request.GET.get("page"))
        finished = list(
            Rollout.objects.filter(status__in=TERMINAL_STATES).order_by("-completed_at", "-created_at")[:10]
        )
        releases = list(Release.objects.order_by("-created_at").values_list("plugin_name", "version")[:200])
        known_plugins = sorted(
            {name for name, _ in releases}
            | {r.plugin_name for r in open_rollouts}
            | {r.plugin_name for r in finished}
        )
        context = self.page_context(
            cards=list(page.object_list),
            page=page,
            open_count=len(open_rollouts),
            attention_count=sum(1 for c in cards if c.needs_attention),
            plugin_filter=plugin_filter,
            finished=finished,
            alerts=list(Alert.objects.order_by("-created_at")[:8]),
            sira=sira_freshness(),
            form=form,
            known_plugins=known_plugins,
            known_releases=releases,
            nav="rollouts",
        )
        return render(self.request, self.template_name, context)


class RolloutActionView(OpsPageMixin):
    """POST ``/ops/rollouts/<id>/<action>``: percentage, pause, resume or complete.

    ``OpsPageMixin`` has already refused anyone who is not an operator (403).
    """

    http_method_names = ["post"]
    action: str = ""

    def post(self, request: HttpRequest, rollout_id: int) -> HttpResponse:
        rollout = Rollout.objects.filter(pk=rollout_id).only("pk", "plugin_name", "version").first()
        if rollout is None:
            raise Http404("No such rollout.")
        label = f"{rollout.plugin_name} {rollout.version}"
        try:
            message = getattr(self, f"do_{self.action}")(rollout, label)
        except DomainError as exc:  # the API's 409/404: the same message, on the page
            messages.error(request, f"{label}: {exc.message}")
        except _Refused as exc:
            messages.error(request, f"{label}: {exc}")
        else:
            if message:
                messages.success(request, message)
        return redirect(f"{reverse('rollout-control')}#rollout-{rollout.pk}")

    def do_percentage(self, rollout: Rollout, label: str) -> str:
        form = PercentageForm(self.request.POST)
        if not form.is_valid():
            raise _Refused(" ".join(e for errors in form.errors.values() for e in errors))
        updated = services.change_rollout(
            rollout.pk,
            actor=self.actor,
            percentage=form.percentage_value,
            expected_percentage=form.expected_value,
        )
        return f"{label} now reaches {updated.rollout_percentage.normalize():f} % of merchants."

    def do_pause(self, rollout: Rollout, label: str) -> str:
        form = PauseForm(self.request.POST)
        if not form.is_valid():
            raise _Refused(" ".join(e for errors in form.errors.values() for e in errors))
        services.pause_rollout(rollout.pk, actor=self.actor, reason=form.reason_value)
        return f"Paused {label}: no new merchant is offered it until it is resumed."

    def do_resume(self, rollout: Rollout, label: str) -> str:
        services.resume_rollout(rollout.pk, actor=self.actor)
        return f"Resumed {label}."

    def do_complete(self, rollout: Rollout, label: str) -> str:
        services.complete_rollout(rollout.pk, actor=self.actor)
        return f"Completed {label}."


class _Refused(Exception):
    """An action refused by the page's own input checks (shown as a message)."""
