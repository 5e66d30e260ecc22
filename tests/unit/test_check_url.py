"""check_url: the browser opens http(s) pages with a host and nothing else."""

from __future__ import annotations

import pytest
from coderunner_gateway.browser import check_url
from coderunner_gateway.errors import BadRequest


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "https://example.com/a?b=c#d",
        "HTTPS://EXAMPLE.COM",
        "http://127.0.0.1:8080/",
        "http://[::1]/",
    ],
)
def test_http_and_https_pass(url):
    assert check_url(url) == url


def test_surrounding_space_is_trimmed():
    assert check_url("  https://example.com/\t") == "https://example.com/"


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "chrome://settings",
        "chrome-extension://abc/x.html",
        "javascript:alert(1)",
        "data:text/html,<script>1</script>",
        "about:blank",
        "view-source:http://example.com",
        "ftp://example.com/",
        "ws://example.com/",
        "/etc/passwd",
        "example.com",
    ],
)
def test_other_schemes_are_unsupported(url):
    with pytest.raises(BadRequest) as exc:
        check_url(url)
    assert exc.value.code == "unsupported_scheme" and exc.value.status == 400


@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        "   ",
        42,
        ["http://x"],
        "http://",
        "https:///path",
        "http://exa\nmple.com",
        "http://a\x00b",
        "http://a\x7f",
    ],
)
def test_malformed_urls_are_invalid(url):
    with pytest.raises(BadRequest) as exc:
        check_url(url)
    assert exc.value.code == "invalid_url"


@pytest.mark.parametrize(
    "url", ["http://[::1", "http://[not-an-ip]/", "https://[1:2:3/x", "http://]x/", "http://x:abc/", "http://x:99999/"]
)
def test_a_malformed_bracketed_host_or_port_is_invalid(url):
    # urlsplit (and .port) raise ValueError for these: a 400, never a 500
    with pytest.raises(BadRequest) as exc:
        check_url(url)
    assert exc.value.code == "invalid_url" and exc.value.status == 400
    assert "not a valid URL" in exc.value.message
