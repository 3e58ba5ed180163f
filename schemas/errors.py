"""The one exception root of leadflow and its families."""


class LeadflowError(Exception):
    """Root of every error leadflow raises on purpose; its message is one readable sentence."""


class SettingsError(LeadflowError):
    """A LEADFLOW_* variable has a bad value."""


class BrokerError(LeadflowError):
    """The Kafka broker (embedded or remote) cannot be started or reached."""


class StoreError(LeadflowError):
    """The SQL store cannot be reached or written."""


class PermanentStoreError(StoreError):
    """A store failure that retrying cannot fix (a missing table, a wrong schema)."""
