"""The test process's caches (tests/support/process_caches.py): what they share, and what not."""

from __future__ import annotations

import ssl

import boto3
import certifi
import httpx
import pytest


def test_every_new_boto3_session_shares_one_loader_without_growing_its_paths() -> None:
    first, second = boto3.session.Session(), boto3.session.Session(region_name="eu-west-1")
    loader = first._session.get_component("data_loader")
    assert second._session.get_component("data_loader") is loader
    assert len(loader.search_paths) == len(set(loader.search_paths))
    # boto3's own resource models are found through it
    assert "sqs" in first.get_available_resources()


def test_a_session_with_its_own_data_path_keeps_its_own_loader(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = boto3.session.Session()._session.get_component("data_loader")
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    own = boto3.session.Session()._session.get_component("data_loader")
    assert own is not shared and str(tmp_path) in own.search_paths


def context_of(transport: httpx.HTTPTransport) -> ssl.SSLContext:
    context = transport._pool._ssl_context
    assert context is not None
    return context


def test_default_httpx_transports_share_one_verifying_context(monkeypatch: pytest.MonkeyPatch) -> None:
    shared = context_of(httpx.HTTPTransport())
    assert context_of(httpx.HTTPTransport()) is shared
    assert shared.verify_mode == ssl.CERT_REQUIRED and shared.check_hostname
    # verify=False, or another CA setting, gets a context of its own
    insecure = context_of(httpx.HTTPTransport(verify=False))
    assert insecure is not shared and insecure.verify_mode == ssl.CERT_NONE
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    other = context_of(httpx.HTTPTransport())
    assert other is not shared and context_of(httpx.HTTPTransport()) is other
