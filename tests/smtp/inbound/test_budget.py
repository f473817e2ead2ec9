"""The inbound resolver's memo of cached answers: the same answers as dnspython's cache, the budget still rules."""

from __future__ import annotations

import time

import dns.exception
import pytest

from harness.settings import make_settings
from mailferry.dns_lookup import txt_records
from mailferry.resolver import make_resolver
from smtp.inbound.budget import BudgetResolver, CachedDns


@pytest.fixture
def cached(dns_server):
    return CachedDns(make_resolver(make_settings(DNS_NAMESERVERS=dns_server.nameservers, DNS_TIMEOUT=1)))


def test_answers_come_from_the_memo_until_they_expire(dns_server, cached, monkeypatch):
    dns_server.set("sender.test", "TXT", "v=spf1 -all", ttl=60)
    assert txt_records(BudgetResolver(cached, 5), "sender.test") == ["v=spf1 -all"]
    dns_server.set("sender.test", "TXT", "v=spf1 +all", ttl=60)
    assert txt_records(BudgetResolver(cached, 5), "sender.test") == ["v=spf1 -all"]
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    assert txt_records(BudgetResolver(cached, 5), "sender.test") == ["v=spf1 +all"]


def test_no_answers_are_not_memoised(dns_server, cached):
    assert txt_records(BudgetResolver(cached, 5), "nothing.test") == []
    assert not cached.memo.answers
    dns_server.set("nothing.test", "TXT", "v=spf1 -all")
    cached.resolver.cache.flush()
    assert txt_records(BudgetResolver(cached, 5), "nothing.test") == ["v=spf1 -all"]


def test_a_spent_budget_times_out_even_for_a_memoised_answer(dns_server, cached):
    dns_server.set("sender.test", "TXT", "v=spf1 -all")
    txt_records(BudgetResolver(cached, 5), "sender.test")
    spent = BudgetResolver(cached, 0)
    with pytest.raises(dns.exception.Timeout):
        spent.resolve("sender.test.", "TXT", search=False, raise_on_no_answer=False)
