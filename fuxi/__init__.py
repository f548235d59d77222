"""fuxi: the Docker volume plugin. It speaks Docker; storage_core does the storage."""
