import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from harness.settings import make_settings
from mailferry.links import (
    CONFIRM_DESTINATION,
    EXPIRED,
    INVALID,
    REENABLE_DESTINATION,
    DestinationLink,
    LinkError,
    link_url,
    make_token,
    read_token,
)

LINK = DestinationLink(7, "nonce-1")


def test_a_link_reads_back_within_its_age():
    settings = make_settings()
    assert read_token(settings, CONFIRM_DESTINATION, make_token(settings, CONFIRM_DESTINATION, LINK), 60) == LINK


def test_a_link_for_one_purpose_is_worthless_for_another():
    settings = make_settings()
    with pytest.raises(LinkError) as err:
        read_token(settings, REENABLE_DESTINATION, make_token(settings, CONFIRM_DESTINATION, LINK), 60)
    assert err.value.reason == INVALID


def test_a_tampered_or_foreign_link_is_invalid():
    settings = make_settings()
    token = make_token(settings, CONFIRM_DESTINATION, LINK)
    forged = URLSafeTimedSerializer("another-key-of-at-least-32-characters!!",
                                    salt="mailferry-link-confirm-destination").dumps([7, "nonce-1"])
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), forged, "garbage", ""):
        with pytest.raises(LinkError) as err:
            read_token(settings, CONFIRM_DESTINATION, bad, 60)
        assert err.value.reason == INVALID


class _HourAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 3601


def test_an_old_link_is_expired():
    settings = make_settings()
    token = URLSafeTimedSerializer(settings.SECRET_KEY, salt="mailferry-link-confirm-destination",
                                   signer=_HourAgo).dumps([7, "nonce-1"])
    assert read_token(settings, CONFIRM_DESTINATION, token, 3700) == LINK
    with pytest.raises(LinkError) as err:
        read_token(settings, CONFIRM_DESTINATION, token, 3600)
    assert err.value.reason == EXPIRED


def test_link_urls_start_with_the_public_url():
    assert link_url(make_settings(PUBLIC_URL="https://mail.example.org/"), CONFIRM_DESTINATION, LINK).startswith(
        "https://mail.example.org/destinations/confirm/")
