"""Cloud lifecycle of storage objects, one module per service."""
