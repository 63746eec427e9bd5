"""Fixtures for the back-office staff actions: the staff of tests/audit (groups, one user per role, payments)."""

from tests.audit.conftest import agent, auditor, captured, lead, make_staff, shop, staff_groups  # noqa: F401
