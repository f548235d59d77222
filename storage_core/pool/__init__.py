"""The warm pool: Cinder volumes made before anyone asks, so a Create costs a
claim instead of a create, and a Mount a bind instead of attach + mkfs + mount.

Tiers (per pool): 1 pre-created; 2 also formatted; 3 also attached to this
host; 4 also mounted in a staging directory. Tier 1 and 2 volumes are shared
by every host of the project and claimed atomically through Cinder's own
reservation; tier 3 and 4 volumes belong to the host that attached them.
"""
