"""The reservation journal: what a crash leaves held is released at the next start."""

from storage_core.errors import CloudError
from storage_core.reservations import ReservationJournal
from storage_core.state import StateStore


def test_held_reservations_are_released_once_and_failures_kept_for_the_next_start(tmp_path):
    journal = ReservationJournal(StateStore(str(tmp_path / "s.db")))
    journal.held("att-1", "vol-1")
    journal.held("att-2", "vol-2")
    journal.held("att-3", "vol-3")
    journal.released("att-3")  # released as usual: forgotten

    def release(attachment_id):
        if attachment_id == "att-2":
            raise CloudError("Cinder is down")
        released.append(attachment_id)
        journal.released(attachment_id)

    released = []
    assert journal.release_leftovers(release) == ["vol-1"]
    assert released == ["att-1"]
    released = []
    assert journal.release_leftovers(lambda a: (released.append(a), journal.released(a))) == ["vol-2"]
    assert journal.release_leftovers(release) == []
