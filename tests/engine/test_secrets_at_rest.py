"""Endpoint secrets at rest: encrypted with the key file, or with WP_LLM_SECRET_KEY when set."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable

from cryptography.fernet import Fernet
from sqlalchemy import select

from tests.e2e.helpers import create_webhook
from tests.support.service import ServiceProcess
from wp_llm.server.crypto import KEY_FILE_NAME
from wp_llm.server.db.engine import create_db_engine
from wp_llm.server.db.schema import webhooks

SECRET = "stored-secret-5c1e7a"


def stored_secrets(database_url: str, webhook_id: str) -> list[dict[str, object]]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            query = select(webhooks.c.secrets).where(webhooks.c.id == webhook_id)
            return list(json.loads(connection.execute(query).scalar_one()))
    finally:
        engine.dispose()


def test_key_file_encrypts_secrets(make_service: Callable[..., ServiceProcess]) -> None:
    service = make_service()
    with service.client(service.create_key()) as client:
        webhook = create_webhook(client, "https://example.com/hook", secret=SECRET)
    key_file = service.data_dir / KEY_FILE_NAME
    [entry] = stored_secrets(service.database_url, webhook["id"])

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert SECRET not in json.dumps(entry)
    assert (
        Fernet(key_file.read_bytes().strip()).decrypt(str(entry["secret"]).encode())
        == SECRET.encode()
    )


def test_configured_key_replaces_key_file(make_service: Callable[..., ServiceProcess]) -> None:
    key = Fernet.generate_key().decode()
    service = make_service(env={"WP_LLM_SECRET_KEY": key})
    with service.client(service.create_key()) as client:
        webhook = create_webhook(client, "https://example.com/hook", secret=SECRET)
    [entry] = stored_secrets(service.database_url, webhook["id"])

    assert not (service.data_dir / KEY_FILE_NAME).exists()
    assert Fernet(key).decrypt(str(entry["secret"]).encode()) == SECRET.encode()


def test_rotation_stores_only_ciphertext(make_service: Callable[..., ServiceProcess]) -> None:
    service = make_service()
    with service.client(service.create_key()) as client:
        webhook = create_webhook(client, "https://example.com/hook", secret=SECRET)
        new = client.post(f"/v1/webhooks/{webhook['id']}/rotate_secret", json={}).json()["secret"]
    entries = stored_secrets(service.database_url, webhook["id"])

    assert len(entries) == 2
    assert entries[0]["expires_at"] is None
    assert isinstance(entries[1]["expires_at"], int)
    assert SECRET not in json.dumps(entries)
    assert new not in json.dumps(entries)
