"""etc/fuxi.conf.sample, made from the option definitions so it cannot drift.

    python -m fuxi.sample_config > etc/fuxi.conf.sample

A unit test compares the checked-in file with what this prints.
"""

import sys
import textwrap

from storage_core.pool.settings import POOL_OPTIONS, SECTION_PREFIX
from fuxi.settings import CONFIG_SECTION, OPTIONS

WIDTH = 88
HEADER = """\
# fuxi-server configuration (made by `python -m fuxi.sample_config`; do not edit
# by hand). Every option is shown commented out with its default. Options with a
# command-line flag (--socket, --state-dir, --devcloud) may be given there too;
# flags win over this file.
"""
POOL_HEADER = """\
# Warm pools: one [pool:NAME] section each (see README, "The warm pool"). A pool
# keeps volumes made ahead so a Create + Mount of a matching volume is nearly as
# fast as a local one. No pool is configured by default; this one shows the
# defaults of every pool option.
"""


def shown(value) -> str:
    """A default as the config file spells it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _option_lines(name, default, help_text) -> list[str]:
    comment = textwrap.wrap(help_text + ".", WIDTH - 2)
    return [f"# {line}" for line in comment] + [f"#{name} = {shown(default)}".rstrip()]


def render() -> str:
    lines = [HEADER.rstrip("\n"), f"[{CONFIG_SECTION}]"]
    for option in OPTIONS:
        lines += _option_lines(option.name, option.default, option.help)
    lines += ["", POOL_HEADER.rstrip("\n"), f"#[{SECTION_PREFIX}small]"]
    for key, option in POOL_OPTIONS.items():
        lines += _option_lines(key, option.default, option.help)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
