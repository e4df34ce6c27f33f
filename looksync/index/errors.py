"""The index's one error type, shared by the contract, its backends and version validation."""


class IndexBackendError(RuntimeError):
    """An index operation failed (unknown version, wrong vector size, backend unavailable...)."""
