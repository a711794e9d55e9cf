"""Tests of fetching and source discovery (worker.fetch)."""
