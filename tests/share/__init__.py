"""Tests of the share endpoints (worker.share)."""
