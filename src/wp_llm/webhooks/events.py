"""Typed event models: the envelope of every delivery and the data of each catalog type.

A delivery body is the event envelope
`{"id": "evt_...", "object": "event", "created": 1640995200, "type": "...", "data": {...}}`.
Every catalog type has an `Event` subclass whose `data` is a typed model; a type this
version does not know parses as a plain `Event[dict[str, Any]]`. All models are frozen,
validate strictly (no "12" for an integer) and keep fields they do not declare, so a
field the service adds later reaches the handler too. Times are integer Unix seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Generic, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainValidator

__all__ = [
    "AnalysisCompletedData",
    "AnalysisCompletedEvent",
    "AnalysisFailedData",
    "AnalysisFailedEvent",
    "AnalysisIssue",
    "EVENT_TYPES",
    "ErrorDetail",
    "Event",
    "EventData",
    "GenerationCompletedData",
    "GenerationCompletedEvent",
    "GenerationFailedData",
    "GenerationFailedEvent",
    "GenerationStartedData",
    "GenerationStartedEvent",
    "ModelTrainingCompletedData",
    "ModelTrainingCompletedEvent",
    "ModelTrainingFailedData",
    "ModelTrainingFailedEvent",
    "ModelTrainingStartedData",
    "ModelTrainingStartedEvent",
    "SystemMaintenanceData",
    "SystemMaintenanceEvent",
    "SystemUpdateData",
    "SystemUpdateEvent",
    "TokenUsage",
    "UsageLimitExceededData",
    "UsageLimitExceededEvent",
    "UsageQuotaExceededData",
    "UsageQuotaExceededEvent",
    "UsageWarningData",
    "UsageWarningEvent",
    "WebhookDisabledData",
    "WebhookDisabledEvent",
]

_MODEL_CONFIG = ConfigDict(extra="allow", frozen=True, strict=True)


def _validate_number(value: object) -> int | float:
    # A plain `int | float` union would put the branch names into error locations.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be a number")
    return value


# A JSON number that keeps its form: 3 stays an int, 2.5 a float. Usage amounts and
# scores may be either.
Number: TypeAlias = Annotated[int | float, PlainValidator(_validate_number)]

DataT = TypeVar("DataT")


class EventData(BaseModel):
    """Base of the typed `data` models, which keep the fields they do not declare."""

    model_config = _MODEL_CONFIG


class Event(BaseModel, Generic[DataT]):
    """The envelope of a delivered event."""

    model_config = _MODEL_CONFIG

    id: str = Field(min_length=1)
    object: Literal["event"]
    created: int
    type: str = Field(min_length=1)
    data: DataT


class ErrorDetail(EventData):
    """The reason an operation failed."""

    code: str
    message: str


class TokenUsage(EventData):
    """Tokens consumed by one text generation."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AnalysisIssue(EventData):
    """One finding of a code analysis."""

    type: str
    severity: str
    line: int
    message: str
    suggestion: str


class GenerationStartedData(EventData):
    """A text generation that has started."""

    id: str
    object: Literal["text_generation"]
    created: int
    model: str
    prompt: str


class GenerationCompletedData(GenerationStartedData):
    """A text generation that finished, with its completion and token usage."""

    completion: str
    usage: TokenUsage
    finish_reason: str


class GenerationFailedData(GenerationStartedData):
    """A text generation that failed."""

    error: ErrorDetail


class AnalysisCompletedData(EventData):
    """A finished code analysis with its issues, score and recommendations."""

    id: str
    object: Literal["code_analysis"]
    created: int
    issues: list[AnalysisIssue]
    score: Number
    recommendations: list[str]


class AnalysisFailedData(EventData):
    """A code analysis that failed."""

    id: str
    object: Literal["code_analysis"]
    created: int
    error: ErrorDetail


class ModelTrainingStartedData(EventData):
    """A model training run that has started."""

    id: str
    object: Literal["training_run"]
    created: int
    model: str
    status: str


class ModelTrainingCompletedData(ModelTrainingStartedData):
    """A model training run that finished, with the name of the fine-tuned model."""

    fine_tuned_model: str
    trained_tokens: int


class ModelTrainingFailedData(ModelTrainingStartedData):
    """A model training run that failed."""

    error: ErrorDetail


class UsageLimitExceededData(EventData):
    """A rate limit that was hit, with requests rejected until `reset_time`."""

    limit: Number
    current_usage: Number
    reset_time: int
    retry_after: int


class UsageQuotaExceededData(EventData):
    """A usage quota that was used up for the period."""

    quota: Number
    current_usage: Number
    period_start: int
    period_end: int


class UsageWarningData(EventData):
    """Usage that crossed `threshold` percent of the quota for the period."""

    quota: Number
    current_usage: Number
    threshold: int
    period_start: int
    period_end: int


class SystemMaintenanceData(EventData):
    """A planned maintenance window."""

    message: str
    starts_at: int
    ends_at: int


class SystemUpdateData(EventData):
    """An announced platform update."""

    message: str
    version: str | None = None
    published_at: int | None = None


class WebhookDisabledData(EventData):
    """A webhook endpoint the service disabled after repeated failures."""

    webhook_id: str
    url: str
    reason: str
    disabled_at: int
    failing_since: int


class GenerationStartedEvent(Event[GenerationStartedData]):
    """`generation.started`: a text generation has started."""

    type: Literal["generation.started"]


class GenerationCompletedEvent(Event[GenerationCompletedData]):
    """`generation.completed`: a text generation finished."""

    type: Literal["generation.completed"]


class GenerationFailedEvent(Event[GenerationFailedData]):
    """`generation.failed`: a text generation failed."""

    type: Literal["generation.failed"]


class AnalysisCompletedEvent(Event[AnalysisCompletedData]):
    """`analysis.completed`: a code analysis finished."""

    type: Literal["analysis.completed"]


class AnalysisFailedEvent(Event[AnalysisFailedData]):
    """`analysis.failed`: a code analysis failed."""

    type: Literal["analysis.failed"]


class ModelTrainingStartedEvent(Event[ModelTrainingStartedData]):
    """`model.training.started`: a training run has started."""

    type: Literal["model.training.started"]


class ModelTrainingCompletedEvent(Event[ModelTrainingCompletedData]):
    """`model.training.completed`: a training run finished."""

    type: Literal["model.training.completed"]


class ModelTrainingFailedEvent(Event[ModelTrainingFailedData]):
    """`model.training.failed`: a training run failed."""

    type: Literal["model.training.failed"]


class UsageLimitExceededEvent(Event[UsageLimitExceededData]):
    """`usage.limit_exceeded`: a rate limit was hit."""

    type: Literal["usage.limit_exceeded"]


class UsageQuotaExceededEvent(Event[UsageQuotaExceededData]):
    """`usage.quota_exceeded`: a quota was used up."""

    type: Literal["usage.quota_exceeded"]


class UsageWarningEvent(Event[UsageWarningData]):
    """`usage.warning`: usage crossed a warning threshold."""

    type: Literal["usage.warning"]


class SystemMaintenanceEvent(Event[SystemMaintenanceData]):
    """`system.maintenance`: maintenance was scheduled."""

    type: Literal["system.maintenance"]


class SystemUpdateEvent(Event[SystemUpdateData]):
    """`system.update`: the platform announced an update."""

    type: Literal["system.update"]


class WebhookDisabledEvent(Event[WebhookDisabledData]):
    """`webhook.disabled`: the service disabled an endpoint."""

    type: Literal["webhook.disabled"]


# The model for each catalog type; verification parses any other type as `Event`.
EVENT_TYPES: Mapping[str, type[Event[Any]]] = MappingProxyType(
    {
        "generation.started": GenerationStartedEvent,
        "generation.completed": GenerationCompletedEvent,
        "generation.failed": GenerationFailedEvent,
        "analysis.completed": AnalysisCompletedEvent,
        "analysis.failed": AnalysisFailedEvent,
        "model.training.started": ModelTrainingStartedEvent,
        "model.training.completed": ModelTrainingCompletedEvent,
        "model.training.failed": ModelTrainingFailedEvent,
        "usage.limit_exceeded": UsageLimitExceededEvent,
        "usage.quota_exceeded": UsageQuotaExceededEvent,
        "usage.warning": UsageWarningEvent,
        "system.maintenance": SystemMaintenanceEvent,
        "system.update": SystemUpdateEvent,
        "webhook.disabled": WebhookDisabledEvent,
    }
)
