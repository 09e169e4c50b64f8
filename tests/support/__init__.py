"""Test doubles shared by the unit and flow tests."""
