"""WP LLM webhooks."""
