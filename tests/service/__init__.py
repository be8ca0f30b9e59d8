"""Tests of the annotation service (store, web, people, exchange, browser)."""
