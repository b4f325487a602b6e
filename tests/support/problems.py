"""Checks on RFC 9457 problem answers."""

from __future__ import annotations


def assert_problem(response, status: int, field: str | None = None, words: str = "", kind: str | None = None) -> dict:
    """The answer is problem+json with `status`, naming `field` and saying `words`, its `type` the
    URL of its kind's entry on the service's problems page; its body."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["type"].startswith("http") and "/docs/problems#" in body["type"], body["type"]
    if kind is not None:
        assert body["type"].endswith("#" + kind), body["type"]
    if field is not None:
        assert body["field"] == field, body
    assert words in body["detail"], body
    return body
