"""Secrets never reach a log line: names, credential-like values, URLs."""

from __future__ import annotations

import pytest

from traffic_duplicator.compare.redact import (
    MASK,
    is_secret_name,
    mask_url,
    render_value,
)


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "Cookie",
        "Set-Cookie",
        "Proxy-Authorization",
        "X-Api-Key",
        "api_key",
        "apiKey",
        "password",
        "newPassword",
        "client_secret",
        "access_token",
        "X-CSRF-Token",
        "session_id",
        "private_key",
        "refreshTokens",
        "PASSWD",
    ],
)
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["name", "author", "email", "Content-Type", "monkey", "id"])
def test_ordinary_names(name):
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    "value",
    [
        "Bearer abc.def",
        "basic dXNlcjpwYXNz",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    ],
)
def test_credential_like_values_are_masked_whatever_their_name(value):
    assert render_value(value) == MASK


def test_values_are_json_and_cut():
    assert render_value("ann") == '"ann"'
    assert render_value(3) == "3"
    assert render_value(None) == "null"
    long = render_value("word " * 100)
    assert len(long) == 80 and long.endswith("…")
    assert render_value("anything", secret=True) == MASK


def test_urls_lose_their_credentials():
    assert (
        mask_url("https://user:hunter2@staging.example.com/x")
        == "https://user:***@staging.example.com/x"
    )
    assert mask_url("https://staging.example.com") == "https://staging.example.com"
