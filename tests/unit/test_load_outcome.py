"""Response classification: semantic failures are failures, partial batches settle per item."""

from __future__ import annotations

from generator.load.outcome import classify


def test_plain_success():
    verdict = classify(200, b"{}", 3)
    assert verdict.ok and not verdict.retry and not verdict.rejected


def test_200_with_an_error_body_rejects_every_item():
    verdict = classify(200, b'{"errors": [{"message": "bad userId"}]}', 2)
    assert not verdict.ok and not verdict.retry
    assert set(verdict.rejected) == {0, 1}
    assert "bad userId" in verdict.message


def test_207_rejects_only_the_named_items():
    body = b'{"errors": [{"batch_index": 1, "reason": "invalid", "message": "name too long"}]}'
    verdict = classify(207, body, 3)
    assert not verdict.ok
    assert dict(verdict.rejected) == {1: "name too long"}


def test_207_naming_no_item_rejects_all_rather_than_hiding_them():
    assert set(classify(207, b"{}", 2).rejected) == {0, 1}


def test_transient_answers_are_retried():
    for status in (0, 429, 500, 503):
        verdict = classify(status, None, 1, error="ConnectionRefusedError")
        assert verdict.retry and not verdict.ok


def test_client_errors_are_final_rejections_with_the_body():
    verdict = classify(400, b'{"errors": [{"reason": "x"}]}', 1)
    assert not verdict.retry and verdict.rejected[0].startswith("HTTP 400")
