"""WP LLM webhooks: the API client, the receiver toolkit and the self-hosted service."""

__version__ = "0.1.0"
