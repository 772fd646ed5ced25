"""The self-hosted webhook service: API, delivery engine, store and migrations.

Installed with the `server` extra: `pip install 'wp-llm[server]'`.
"""
