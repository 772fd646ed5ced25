"""Usage limits of the API: request rate limits per API key, monthly event quotas per
account, and the usage notices and announcements published to accounts.

The policies (`ratelimit.TokenBucket`, `quota.QuotaPolicy`) are pure and return
decisions; `wp_llm.server.store.usage` stores the state they decide on.
"""
