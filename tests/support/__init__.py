"""Test support: real servers and helpers shared by test modules."""
