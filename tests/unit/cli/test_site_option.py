"""`--site` resolution (reactor/cli/helpers.py): one site needs no name, several need one for a
command on one invoice's data, and listings cover every site; unknown names are refused naming
the configured ones, exit 2."""

from __future__ import annotations

import pytest

from reactor.cli.helpers import SiteRefused, each_site, one_site
from reactor.config import load_settings

ONE = {
    "CHARGEBEE_SITE": "acme",
    "CHARGEBEE_API_KEY": "k1",
    "REACTOR_WEBHOOK_USER": "u",
    "REACTOR_WEBHOOK_PASSWORD": "p",
}
TWO = {
    **ONE,
    "REACTOR_SITES": "acme,acme-eu",
    "REACTOR_SITE_ACME_EU_API_KEY": "k2",
    "REACTOR_SITE_ACME_EU_WEBHOOK_USER": "u2",
    "REACTOR_SITE_ACME_EU_WEBHOOK_PASSWORD": "p2",
}


def test_one_site_is_taken_without_a_name() -> None:
    settings = load_settings(ONE, dotenv=False)
    assert one_site(settings, None).site_name == "acme"
    assert [s.site_name for s in each_site(settings, None)] == ["acme"]


def test_several_sites_need_a_name_for_one_invoice() -> None:
    settings = load_settings(TWO, dotenv=False)
    with pytest.raises(SiteRefused) as refused:
        one_site(settings, None)
    assert refused.value.exit_code == 2
    assert refused.value.message == "several Chargebee sites are configured (acme, acme-eu): name one with --site"
    eu = one_site(settings, "acme-eu")
    assert (eu.site_name, eu.key_prefix, eu.queue_name) == ("acme-eu", "reactor:site:acme-eu", "reactor:acme-eu")


def test_listings_cover_every_site_home_first_or_the_named_one() -> None:
    settings = load_settings(TWO, dotenv=False)
    assert [s.key_prefix for s in each_site(settings, None)] == ["reactor", "reactor:site:acme-eu"]
    assert [s.site_name for s in each_site(settings, "acme-eu")] == ["acme-eu"]


@pytest.mark.parametrize("resolve", [one_site, each_site])
def test_an_unknown_site_is_refused_naming_the_configured_ones(resolve) -> None:
    with pytest.raises(SiteRefused, match=r"no Chargebee site named 'acme-us' is configured \(sites: acme, acme-eu\)"):
        resolve(load_settings(TWO, dotenv=False), "acme-us")
