"""CSP violation reports (ASVS V3.4.7): /csp-report takes both formats browsers send, logs one short
line and stores nothing, and a flood of them is refused. docs/security.md §2.9."""

from __future__ import annotations

import json
import time

import pytest
from django.conf import settings as django_settings
from django.test import Client

from oficina.csp_report import MAX_REPORT_BYTES
from tests.factories import DEFAULT_PIN
from tests.security import sign_in

pytestmark = pytest.mark.django_db

URL = "/csp-report"
LEGACY = {
    "csp-report": {
        "document-uri": "https://oficina.example/clave/?token=s3cr3t#x",
        "referrer": "",
        "violated-directive": "img-src",
        "effective-directive": "img-src",
        "original-policy": "default-src 'self'; …",
        "disposition": "enforce",
        "blocked-uri": "https://otro.example/pixel.png?who=s3cr3t",
        "line-number": 12,
        "source-file": "https://oficina.example/static/js/app.js",
        "status-code": 200,
        "script-sample": "s3cr3t",
    }
}


def reporting_api(count: int) -> list[dict[str, object]]:
    return [
        {
            "type": "csp-violation",
            "age": 10,
            "url": "https://oficina.example/oficina/",
            "user_agent": "Mozilla/5.0",
            "body": {
                "documentURL": "https://oficina.example/oficina/",
                "blockedURL": "inline" if n % 2 else f"https://otro.example/{n}.js?k=s3cr3t",
                "effectiveDirective": "script-src-elem",
                "disposition": "enforce",
                "sourceFile": "https://oficina.example/oficina/",
                "lineNumber": n,
                "sample": "s3cr3t",
            },
        }
        for n in range(count)
    ]


def violation_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "oficina.csp_report"]


def test_every_page_names_the_report_address():
    page = Client().get("/")
    assert "report-uri /csp-report" in page["Content-Security-Policy"].split("; ")
    assert "report-to csp" in page["Content-Security-Policy"].split("; ")
    assert page["Reporting-Endpoints"] == 'csp="/csp-report"'


def test_a_legacy_report_is_one_short_line_without_queries_or_samples(caplog):
    answer = Client().post(URL, json.dumps(LEGACY), content_type="application/csp-report")

    assert answer.status_code == 204
    [line] = violation_lines(caplog)
    assert line == (
        "CSP violation reported: img-src blocked https://otro.example/pixel.png on "
        "https://oficina.example/clave/ (source https://oficina.example/static/js/app.js:12, enforce)"
    )
    assert "s3cr3t" not in caplog.text


def test_a_reporting_api_batch_names_three_violations_and_counts_the_rest(caplog):
    answer = Client().post(URL, json.dumps(reporting_api(5)), content_type="application/reports+json")

    assert answer.status_code == 204
    [line] = violation_lines(caplog)
    assert line.startswith("CSP violation reported: script-src-elem blocked https://otro.example/0.js on ")
    assert line.count("script-src-elem blocked") == 3
    assert "script-src-elem blocked inline on" in line
    assert line.endswith("; and 2 more")
    assert "s3cr3t" not in caplog.text


def test_a_report_needs_no_csrf_token_and_leaves_the_members_session_alone(member):
    """Browsers send reports on their own, with the member's cookies but no token. The report is
    answered before the sessions: it does not renew the member's idle clock (a page reporting
    violations in a tab left open would keep the office open) nor set a cookie."""
    browser = Client(enforce_csrf_checks=True)
    signed_in = Client()
    assert sign_in(signed_in, member.document, DEFAULT_PIN).url == "/oficina/"
    browser.cookies[django_settings.SESSION_COOKIE_NAME] = signed_in.cookies[
        django_settings.SESSION_COOKIE_NAME
    ].value
    session = signed_in.session
    session["member"]["seen_at"] = time.time() - 60
    session.save()
    seen_at = signed_in.session["member"]["seen_at"]

    answer = browser.post(URL, json.dumps(LEGACY), content_type="application/csp-report")

    assert answer.status_code == 204
    assert not answer.cookies
    assert signed_in.session["member"]["seen_at"] == seen_at


def test_a_report_larger_than_the_bound_is_refused_unlogged(caplog):
    padded = {"csp-report": {**LEGACY["csp-report"], "script-sample": "x" * MAX_REPORT_BYTES}}

    answer = Client().post(URL, json.dumps(padded), content_type="application/csp-report")

    assert answer.status_code == 413
    assert not violation_lines(caplog)


def test_only_a_post_of_json_reports_is_taken(caplog):
    browser = Client()
    get = browser.get(URL)
    assert get.status_code == 405
    assert get["Allow"] == "POST"
    assert browser.post(URL, "<xml/>", content_type="text/xml").status_code == 415
    assert browser.post(URL, "{not json", content_type="application/csp-report").status_code == 400
    assert browser.post(URL, b"\xff\xfe", content_type="application/csp-report").status_code == 400
    assert browser.post(URL, "[1, {}]", content_type="application/reports+json").status_code == 400
    assert browser.post(URL, '{"csp-report": 1}', content_type="application/csp-report").status_code == 400
    assert not violation_lines(caplog)


@pytest.mark.usefixtures("frozen_window")
def test_a_flood_of_reports_is_refused_past_the_limit_with_one_line(settings, caplog):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "csp_report": "3/m/ip"}
    flooder, other = Client(REMOTE_ADDR="10.0.0.1"), Client(REMOTE_ADDR="10.0.0.2")
    body = json.dumps(LEGACY)

    statuses = [flooder.post(URL, body, content_type="application/csp-report") for _ in range(6)]

    assert [answer.status_code for answer in statuses] == [204, 204, 204, 429, 429, 429]
    assert int(statuses[-1]["Retry-After"]) > 0
    lines = violation_lines(caplog)
    assert len(lines) == 4  # three reports, then one line for the flood
    assert lines[-1].startswith("CSP reports over RATE_LIMIT_CSP_REPORT from one client")
    assert "Too Many Requests" not in caplog.text  # not one more line per refused report
    assert other.post(URL, body, content_type="application/csp-report").status_code == 204
