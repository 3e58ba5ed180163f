"""SLA policies (contract section 8): business-time calendars, the policy file, its check."""
