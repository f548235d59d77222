"""storage_core: put OpenStack storage on a host, for any plugin that needs it.

This package never speaks Docker or HTTP-serving: callers (fuxi, a CSI driver)
translate their own protocol into :class:`storage_core.service.VolumeService` calls.
"""
