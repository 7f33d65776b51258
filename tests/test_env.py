"""The typed readers of environment variables (oficina/lib/env.py)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from oficina.lib.env import envlist


def test_envlist_splits_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv("OFICINA_TEST_LIST", " a.example , ,b.example,")

    assert envlist("OFICINA_TEST_LIST") == ["a.example", "b.example"]


def test_envlist_gives_the_default_when_the_variable_is_unset(monkeypatch):
    monkeypatch.delenv("OFICINA_TEST_LIST", raising=False)
    monkeypatch.delenv("OFICINA_TEST_LIST_FILE", raising=False)

    assert envlist("OFICINA_TEST_LIST", "127.0.0.1,localhost") == ["127.0.0.1", "localhost"]
    assert envlist("OFICINA_TEST_LIST") == []


def test_envlist_reads_the_file_named_by_name_file_before_the_variable(monkeypatch, tmp_path):
    values = tmp_path / "list"
    values.write_text("old-key-1,old-key-2\n", encoding="utf-8")
    monkeypatch.setenv("OFICINA_TEST_LIST", "ignored")
    monkeypatch.setenv("OFICINA_TEST_LIST_FILE", str(values))

    assert envlist("OFICINA_TEST_LIST") == ["old-key-1", "old-key-2"]


def test_envlist_takes_one_value_a_line_from_a_file(monkeypatch, tmp_path):
    values = tmp_path / "list"
    values.write_text("old-key-1\r\nold-key-2\n\n", encoding="utf-8")
    monkeypatch.setenv("OFICINA_TEST_LIST_FILE", str(values))

    assert envlist("OFICINA_TEST_LIST") == ["old-key-1", "old-key-2"]


def test_envlist_fails_loudly_on_an_unreadable_file(monkeypatch, tmp_path):
    monkeypatch.setenv("OFICINA_TEST_LIST_FILE", str(tmp_path / "missing"))

    with pytest.raises(ImproperlyConfigured, match="OFICINA_TEST_LIST_FILE"):
        envlist("OFICINA_TEST_LIST")
