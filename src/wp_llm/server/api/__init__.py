"""The HTTP API: `/v1/webhooks`, `/v1/events`, `/v1/deliveries`, `/v1/event_types`."""
