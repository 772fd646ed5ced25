"""Request bodies of the API; unknown fields are rejected so typos do not pass silently."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from wp_llm._signing import STANDARD_SECRET_PREFIX
from wp_llm.server.api.payload_checks import check_value

MAX_DESCRIPTION_LENGTH = 500
MIN_SECRET_LENGTH = 8
MAX_SECRET_LENGTH = 256
MAX_SUBSCRIPTIONS = 100
# A bound on the request size only; the operator's WP_LLM_MAX_RETRY_ATTEMPTS is usually lower.
MAX_RETRY_SCHEDULE_ITEMS = 100
MAX_REPLAY_EVENT_TYPES = 100


class _Request(BaseModel):
    # Strict: "yes" is no boolean and true is no number; only JSON's own types pass.
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="after")
    def _check_storable(self) -> _Request:
        for name in type(self).model_fields:
            check_value(getattr(self, name), name)
        return self


def _check_secret(secret: str | None) -> str | None:
    if secret is None:
        return None
    if secret != secret.strip():
        raise ValueError("the secret must not start or end with whitespace")
    if secret.startswith(STANDARD_SECRET_PREFIX):
        # Receivers read a whsec_ value as base64 of the key, so the raw bytes would not match.
        raise ValueError(
            f"pass the raw secret, not the {STANDARD_SECRET_PREFIX} form; "
            "the API returns that form alongside it"
        )
    return secret


Secret = Annotated[
    str,
    Field(min_length=MIN_SECRET_LENGTH, max_length=MAX_SECRET_LENGTH),
    AfterValidator(_check_secret),
]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _DeliverySettings(_Request):
    """Per-endpoint delivery settings, each capped by the operator, with null for the default."""

    rate_limit: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Deliveries per second to this endpoint at most.",
    )
    max_concurrency: int | None = Field(
        default=None, ge=1, description="Deliveries in flight to this endpoint at most."
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Seconds one attempt may take, from connecting to reading the response.",
    )
    retry_schedule: list[Seconds] | None = Field(
        default=None,
        max_length=MAX_RETRY_SCHEDULE_ITEMS,
        description="Seconds to wait before each retry; an empty list means no retries.",
    )


class WebhookCreate(_DeliverySettings):
    url: str = Field(
        min_length=1, description="The HTTPS or HTTP endpoint that receives deliveries."
    )
    events: list[str] = Field(
        min_length=1,
        max_length=MAX_SUBSCRIPTIONS,
        description="Event types to subscribe to: exact types, `prefix.*` wildcards or `*`.",
    )
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)
    secret: Secret | None = Field(
        default=None,
        description="The signing secret; one is generated and returned once when omitted.",
    )
    enabled: bool = True


class WebhookUpdate(_DeliverySettings):
    url: str | None = Field(default=None, min_length=1)
    events: list[str] | None = Field(default=None, min_length=1, max_length=MAX_SUBSCRIPTIONS)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)
    enabled: bool | None = None


class SecretRotation(_Request):
    secret: Secret | None = Field(
        default=None, description="The new signing secret; one is generated when omitted."
    )
    grace_period: Seconds | None = Field(
        default=None,
        description="Seconds the older secrets keep signing deliveries; 24 hours when omitted.",
    )


ReplayStatus = Literal["pending", "succeeded", "failed"]
DEFAULT_REPLAY_STATUSES: tuple[ReplayStatus, ...] = ("failed",)


class WebhookReplay(_Request):
    since: int = Field(ge=0, description="Replay deliveries created at or after this Unix time.")
    until: int | None = Field(
        default=None,
        ge=0,
        description="Replay deliveries created before this Unix time; now when omitted.",
    )
    event_types: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_REPLAY_EVENT_TYPES,
        description="Only these event types: exact types, `prefix.*` wildcards or `*`.",
    )
    status: list[ReplayStatus] = Field(
        default_factory=lambda: list(DEFAULT_REPLAY_STATUSES),
        min_length=1,
        description="Only deliveries in these statuses; failed ones when omitted.",
    )
    dry_run: bool = Field(default=False, description="Count the matching deliveries only.")


class WebhookTest(_Request):
    type: str = Field(default="generation.completed", description="The event type to send.")
    data: dict[str, Any] | None = Field(
        default=None,
        description="Event data; fields it leaves out are filled from the type's catalog example.",
    )


class EventCreate(_Request):
    type: str = Field(description="A catalog event type, such as `generation.completed`.")
    data: dict[str, Any] = Field(description="The event data, checked against the type's schema.")
    account: str | None = Field(
        default=None, description="Service keys only: the account (id or name) to publish to."
    )


# Events one batch request may publish; each is counted against the quota.
MAX_BATCH_EVENTS = 100


class EventBatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: str = Field(description="A catalog event type, such as `generation.completed`.")
    data: dict[str, Any] = Field(description="The event data, checked against the type's schema.")


class EventBatchCreate(_Request):
    events: list[EventBatchItem] = Field(
        min_length=1,
        max_length=MAX_BATCH_EVENTS,
        description=f"1 to {MAX_BATCH_EVENTS} events, published together: all of them or none.",
    )
    account: str | None = Field(
        default=None, description="Service keys only: the account (id or name) to publish to."
    )

    @model_validator(mode="after")
    def _check_storable(self) -> EventBatchCreate:
        for index, item in enumerate(self.events):
            check_value(item.type, f"events[{index}].type")
            check_value(item.data, f"events[{index}].data")
        if self.account is not None:
            check_value(self.account, "account")
        return self
