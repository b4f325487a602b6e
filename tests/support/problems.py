"""Checks on RFC 9457 problem answers."""

from __future__ import annotations


def assert_problem(response, status: int, field: str | None = None, words: str = "") -> dict:
    """The answer is problem+json with `status`, naming `field` and saying `words`; its body."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["type"].startswith("https://") and body["title"] and body["detail"]
    if field is not None:
        assert body["field"] == field, body
    assert words in body["detail"], body
    return body
