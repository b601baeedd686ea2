"""`reactor run` turns the dashboard on with a demo login in sandbox mode only, and says so in one
line; outside sandbox mode it adds nothing, and a configured password is never printed."""

import pytest

from reactor.config import load_settings
from reactor.local.supervisor import DEV_ADMIN_PASSWORD, DEV_ADMIN_USER, dashboard_line, sandbox_dashboard

BASE = "http://127.0.0.1:8000"
CHARGEBEE = {"CHARGEBEE_SITE": "acme-test", "CHARGEBEE_API_KEY": "live_key"}
OWN_LOGIN = {"REACTOR_ADMIN_USER": "oncall", "REACTOR_ADMIN_PASSWORD": "our-own-secret"}


def test_nothing_configured_gives_the_demo_login_and_a_cookie_for_plain_http():
    settings = load_settings({}, dotenv=False)
    extra = sandbox_dashboard(settings)
    assert extra == {
        "REACTOR_ADMIN_USER": DEV_ADMIN_USER,
        "REACTOR_ADMIN_PASSWORD": DEV_ADMIN_PASSWORD,
        "REACTOR_ADMIN_INSECURE_COOKIE": "1",
    }
    line = dashboard_line(settings, extra, BASE)
    assert line == f"Dashboard: {BASE}/admin/  (user 'admin', password 'sandbox-only-dashboard'; sandbox only)"
    child = load_settings(extra, dotenv=False)  # what the web process reads from them
    assert (child.admin_user, child.admin_password, child.admin_insecure_cookie) == (
        DEV_ADMIN_USER,
        DEV_ADMIN_PASSWORD,
        True,
    )


def test_outside_sandbox_mode_no_demo_login_and_the_cookie_stays_secure():
    settings = load_settings(CHARGEBEE, dotenv=False)
    assert sandbox_dashboard(settings) == {}
    assert not settings.admin_insecure_cookie
    assert dashboard_line(settings, {}, BASE) == (
        "Dashboard: off (set REACTOR_ADMIN_USER and REACTOR_ADMIN_PASSWORD to turn it on)"
    )


def test_a_configured_login_is_kept_and_its_password_never_printed():
    for env, extra in (({**CHARGEBEE, **OWN_LOGIN}, {}), (OWN_LOGIN, {"REACTOR_ADMIN_INSECURE_COOKIE": "1"})):
        settings = load_settings(env, dotenv=False)
        assert sandbox_dashboard(settings) == extra
        line = dashboard_line(settings, extra, BASE)
        assert line == f"Dashboard: {BASE}/admin/  (user 'oncall', password in REACTOR_ADMIN_PASSWORD)"
        assert "our-own-secret" not in line


def test_half_a_login_in_sandbox_mode_is_replaced_by_the_demo_one():
    settings = load_settings({"REACTOR_ADMIN_USER": "oncall"}, dotenv=False)
    extra = sandbox_dashboard(settings)
    assert (extra["REACTOR_ADMIN_USER"], extra["REACTOR_ADMIN_PASSWORD"]) == (DEV_ADMIN_USER, DEV_ADMIN_PASSWORD)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_the_demo_login_is_given_on_a_loopback_host(host):
    assert sandbox_dashboard(load_settings({}, dotenv=False), host)["REACTOR_ADMIN_PASSWORD"] == DEV_ADMIN_PASSWORD


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "reactor.example.com"])
def test_the_published_demo_password_is_never_offered_beyond_the_loopback(host):
    settings = load_settings({}, dotenv=False)
    extra = sandbox_dashboard(settings, host)
    assert extra == {"REACTOR_ADMIN_INSECURE_COOKIE": "1"}
    line = dashboard_line(settings, extra, BASE)
    assert DEV_ADMIN_PASSWORD not in line and line.startswith("Dashboard: off (the demo login is only offered")
    own = load_settings(OWN_LOGIN, dotenv=False)
    assert sandbox_dashboard(own, host) == {"REACTOR_ADMIN_INSECURE_COOKIE": "1"}
