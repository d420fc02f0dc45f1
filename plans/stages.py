"""Stage definitions: the one validation of a list of stages (templates, API, dashboard)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .choices import GateKind

MAX_STAGES = 20
MAX_SOAK_MINUTES = 60 * 24 * 90  # 90 days
HUNDREDTH = Decimal("0.01")


class StageError(ValueError):
    """A stage list that cannot be used (the message says which stage and why)."""


@dataclass(frozen=True)
class StageDefinition:
    percentage: Decimal
    min_soak_minutes: int = 0
    min_merchants: int = 0
    max_error_rate: Decimal | None = None
    gate: str = GateKind.RATE

    def as_json(self) -> dict:
        return {
            "percentage": f"{self.percentage.normalize():f}",
            "min_soak_minutes": self.min_soak_minutes,
            "min_merchants": self.min_merchants,
            "max_error_rate": None if self.max_error_rate is None else f"{self.max_error_rate.normalize():f}",
            "gate": self.gate,
        }


def _decimal(value, what: str) -> Decimal:
    # JSON numbers or numeric strings (stored templates keep strings to avoid float rounding).
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise StageError(f"{what} must be a number.")
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise StageError(f"{what} must be a number.") from exc
    if not number.is_finite():
        raise StageError(f"{what} must be a number.")
    return number


def _whole(value, what: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise StageError(f"{what} must be a whole number from 0 to {maximum}.")
    return value


def parse_stages(data) -> list[StageDefinition]:
    """Validate stages: percentages rising strictly, each 0.01–100 in steps of 0.01 %."""
    if not isinstance(data, list) or not data:
        raise StageError("A plan needs a non-empty list of stages.")
    if len(data) > MAX_STAGES:
        raise StageError(f"A plan has at most {MAX_STAGES} stages.")
    stages: list[StageDefinition] = []
    allowed = {"percentage", "min_soak_minutes", "min_merchants", "max_error_rate", "gate"}
    for index, item in enumerate(data, start=1):
        where = f"Stage {index}"
        if not isinstance(item, dict):
            raise StageError(f"{where} must be an object with a percentage.")
        unknown = sorted(set(item) - allowed)
        if unknown:
            raise StageError(f"{where}: unknown field {unknown[0][:32]!r}.")
        if "percentage" not in item:
            raise StageError(f"{where} needs a percentage.")
        pct = _decimal(item["percentage"], f"{where} percentage")
        if not HUNDREDTH <= pct <= 100 or pct != pct.quantize(HUNDREDTH):
            raise StageError(f"{where} percentage must be from 0.01 to 100 in steps of 0.01.")
        if stages and pct <= stages[-1].percentage:
            raise StageError(
                f"{where} percentage must be above the previous stage's ({stages[-1].percentage:g})."
            )
        max_rate = item.get("max_error_rate")
        if max_rate is not None:
            max_rate = _decimal(max_rate, f"{where} max_error_rate")
            if not Decimal("0") < max_rate <= 1 or max_rate != max_rate.quantize(Decimal("0.0001")):
                raise StageError(
                    f"{where} max_error_rate must be above 0 and at most 1 (e.g. 0.03), 4 decimals."
                )
        gate = item.get("gate", GateKind.RATE)
        if gate not in GateKind.values:
            raise StageError(f"{where} gate must be one of {', '.join(GateKind.values)}.")
        stages.append(
            StageDefinition(
                percentage=pct.quantize(HUNDREDTH),
                min_soak_minutes=_whole(
                    item.get("min_soak_minutes", 0), f"{where} min_soak_minutes", MAX_SOAK_MINUTES
                ),
                min_merchants=_whole(item.get("min_merchants", 0), f"{where} min_merchants", 10_000_000),
                max_error_rate=max_rate,
                gate=gate,
            )
        )
    return stages
