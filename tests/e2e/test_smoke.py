from tests.conftest import Account
from tests.support.receiver import Receiver


def test_event_reaches_subscribed_receiver(account: Account, receiver: Receiver) -> None:
    created = account.client.post("/v1/webhooks", json={"url": receiver.url, "events": ["generation.*"]})
    assert created.status_code == 201
    published = account.client.post(
        "/v1/events",
        json={"type": "generation.started",
              "data": {"id": "g", "object": "text_generation", "created": 1, "model": "m", "prompt": "p"}},
    )
    assert published.status_code == 201
    [request] = receiver.wait_for(1)
    assert request.body == published.content
