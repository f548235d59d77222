"""The reservations this host holds, journaled: a Cinder reservation (an
attachment without a connector) holds a volume while fuxi changes its record
(an adoption, a pool claim). A crash while one is held would leave the volume
"reserved", unusable by anyone, for good; the next start releases what the
journal still lists.

(A crash between Cinder's answer to the reservation and its journal entry is
not covered: a few microseconds, against the whole rename it used to be.)
"""

import logging

from storage_core.errors import StorageError

LOG = logging.getLogger(__name__)

_PREFIX = "reservation:"


class ReservationJournal:
    def __init__(self, state):
        self._state = state

    def held(self, attachment_id, volume_id) -> None:
        self._state.set_host_fact(_PREFIX + attachment_id, volume_id)

    def released(self, attachment_id) -> None:
        self._state.delete_host_fact(_PREFIX + attachment_id)

    def release_leftovers(self, release) -> list[str]:
        """Release (with `release(attachment_id)`) every reservation a crash left;
        the volumes they held."""
        freed = []
        for key, volume_id in self._state.host_facts_with_prefix(_PREFIX):
            attachment_id = key[len(_PREFIX):]
            try:
                release(attachment_id)
            except StorageError as exc:
                LOG.warning("volume %s: releasing reservation %s a crash left failed (tried again at the next "
                            "start): %s", volume_id, attachment_id, exc)
                continue
            LOG.warning("volume %s: released reservation %s, which a crash left held", volume_id, attachment_id)
            freed.append(volume_id)
        return freed
