"""A policy file with two calendars, for the SLA tests."""

from __future__ import annotations

POLICY_FILE = """
calendars:
  paris:
    timezone: Europe/Paris
    hours: {mon: ["09:00-12:30", "13:30-18:00"], tue: ["09:00-18:00"], wed: ["09:00-18:00"],
            thu: ["09:00-18:00"], fri: ["09:00-17:00"]}
    holidays: ["2026-12-25"]
  new_york:
    timezone: America/New_York
    hours: {mon: ["08:00-20:00"], tue: ["08:00-20:00"], wed: ["08:00-20:00"],
            thu: ["08:00-20:00"], fri: ["08:00-20:00"], sat: ["10:00-14:00"]}
policies:
  - name: instant
    when: {source: [instant]}
    target_hours: 0.003
  - name: hot
    when: {source: [paid_search, referral], min_score: 60}
    target_hours: 2
    calendar: paris
  - name: americas
    when: {source: [social, email]}
    target_hours: 8
    calendar: new_york
  - name: default
    target_hours: 24
"""
