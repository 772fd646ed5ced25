"""Request bodies of the API; unknown fields are rejected so typos do not pass silently."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_DESCRIPTION_LENGTH = 500
MIN_SECRET_LENGTH = 8
MAX_SECRET_LENGTH = 256
MAX_SUBSCRIPTIONS = 100


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookCreate(_Request):
    url: str = Field(min_length=1, description="The HTTPS or HTTP endpoint that receives deliveries.")
    events: list[str] = Field(
        min_length=1,
        max_length=MAX_SUBSCRIPTIONS,
        description="Event types to subscribe to: exact types, `prefix.*` wildcards or `*`.",
    )
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)
    secret: str | None = Field(
        default=None,
        min_length=MIN_SECRET_LENGTH,
        max_length=MAX_SECRET_LENGTH,
        description="The signing secret; one is generated and returned once when omitted.",
    )
    enabled: bool = True


class WebhookUpdate(_Request):
    url: str | None = Field(default=None, min_length=1)
    events: list[str] | None = Field(default=None, min_length=1, max_length=MAX_SUBSCRIPTIONS)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)
    enabled: bool | None = None


class WebhookTest(_Request):
    type: str = Field(default="generation.completed", description="The event type to send.")
    data: dict[str, Any] | None = Field(
        default=None, description="The event data; the catalog example of the type when omitted."
    )


class EventCreate(_Request):
    type: str = Field(description="A catalog event type, such as `generation.completed`.")
    data: dict[str, Any] = Field(description="The event data, checked against the type's schema.")
    account: str | None = Field(
        default=None, description="Service keys only: the account (id or name) to publish to."
    )
