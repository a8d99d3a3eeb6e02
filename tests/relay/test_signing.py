"""The signatures the relay sends: Standard Webhooks', byte for byte, with every secret still valid."""

from datetime import UTC, datetime, timedelta

from standardwebhooks.webhooks import Webhook

from service.relay.sender import signature_headers
from service.store.webhook_endpoints import Endpoint, SigningSecret

NOW = datetime(2026, 12, 2, 12, 0, 7, 900000, tzinfo=UTC)
CURRENT = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PREVIOUS = "whsec_c2VjcmV0LW9mLXRoZS1wcmV2aW91cy1rZXk="
BODY = '{"order_id":"ORD-1","note":"café"}'.encode()


def _endpoint(previous_expires_at: datetime) -> Endpoint:
    return Endpoint(
        endpoint_id="ep-1",
        client_id="client-1",
        url="https://hooks.example.com/h",
        created_at=NOW,
        secrets=[
            SigningSecret(secret=CURRENT),
            SigningSecret(secret=PREVIOUS, expires_at=previous_expires_at),
        ],
    )


def test_the_signature_headers_are_pinned_and_are_the_librarys() -> None:
    """Known values (as the relay signed before it signed with `hmac.digest` itself), and what the
    `standardwebhooks` library signs and verifies."""
    headers = signature_headers(_endpoint(NOW + timedelta(hours=1)), "evt-1", BODY, NOW)

    assert headers == {
        "webhook-id": "evt-1",
        "webhook-timestamp": "1796212807",
        "webhook-signature": "v1,f6vqV2Zxg2B6M7uFmLKLRgiFXJyA+SDua2PHReoM+2I= "
        "v1,YYkIgTOxmSxmU0FedsTsWDqHJ1Fcz71ASXLcoFj6Wr8=",
        "content-type": "application/json",
        "user-agent": "orders-webhook-relay/1",
    }
    library = [Webhook(secret).sign("evt-1", NOW, BODY.decode()) for secret in (CURRENT, PREVIOUS)]
    assert headers["webhook-signature"] == " ".join(library)


def test_an_expired_secret_no_longer_signs() -> None:
    headers = signature_headers(_endpoint(NOW), "evt-1", BODY, NOW)

    assert headers["webhook-signature"] == Webhook(CURRENT).sign("evt-1", NOW, BODY.decode())
