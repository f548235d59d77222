"""Node ids: how the controller knows what a node is.

A node that attaches through Nova is `nova:SERVER_ID` (the controller attaches
Cinder volumes to that server); any other is `host:NAME` (the node attaches
them itself, through Cinder's attachments, when it stages them).
"""

from dataclasses import dataclass

NOVA_PREFIX = "nova:"
HOST_PREFIX = "host:"


@dataclass(frozen=True)
class NodeRef:
    server_id: str | None = None
    host_name: str | None = None


def node_id_for(attach_mode, server_id=None, host_name=None) -> str:
    return NOVA_PREFIX + server_id if attach_mode == "nova" else HOST_PREFIX + host_name


def parse_node_id(node_id) -> NodeRef | None:
    """What `node_id` names, or None when fuxi-csi never reports such an id."""
    if node_id.startswith(NOVA_PREFIX) and len(node_id) > len(NOVA_PREFIX):
        return NodeRef(server_id=node_id[len(NOVA_PREFIX):])
    if node_id.startswith(HOST_PREFIX) and len(node_id) > len(HOST_PREFIX):
        return NodeRef(host_name=node_id[len(HOST_PREFIX):])
    return None
