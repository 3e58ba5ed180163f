"""Alembic migrations of the shared store (a package so that installs ship env.py)."""
