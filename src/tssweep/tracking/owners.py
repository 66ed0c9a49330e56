"""No run left RUNNING by a process that is gone, even one killed with SIGKILL.

A process killed outright (``kill -9``, the OOM killer, a closed laptop) runs no
cleanup, so its runs would stay RUNNING for good. Each run records its owners, the
processes writing to it (``host/pid/start``; the start time tells a pid reused by a
new process apart), in the ``tssweep.owners`` tag; a study's parent lists every
process that joined it. Every command, when it opens the store, first closes as KILLED,
tagged ``tssweep.reaped``, the RUNNING runs of its experiment whose owners all ran on
this host and are all gone. Runs with an owner on another host are left alone: that
host's next command closes them.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

OWNERS_TAG = "tssweep.owners"
REAPED_TAG = "tssweep.reaped"


def this_process() -> str:
    """This process as an owner: ``host/pid/start``."""
    return _owner(socket.gethostname(), os.getpid())


def joined(owners: str, owner: str | None = None) -> str:
    """``owners`` with ``owner`` (this process) added and the ones gone from this host left out."""
    live = [existing for existing in owners.split() if not _gone(existing)]
    return " ".join(dict.fromkeys([*live, owner or this_process()]))


def reap(store) -> list[str]:
    """Close as KILLED the RUNNING runs of ``store``'s experiment whose owners were all
    on this host and are all gone; returns their ids."""
    running = store.client.search_runs(
        [store.experiment_id], filter_string=f"attributes.status = 'RUNNING' and tags.`{OWNERS_TAG}` != ''")
    reaped = []
    for run in running:
        owners = run.data.tags.get(OWNERS_TAG, "").split()
        if owners and all(_gone(owner) for owner in owners):
            store.client.set_tag(run.info.run_id, REAPED_TAG,
                                 f"closed by {this_process()}: its owner {' '.join(owners)} is gone")
            store.client.set_terminated(run.info.run_id, "KILLED")
            reaped.append(run.info.run_id)
    if reaped:
        log.warning("Closed %d run(s) left RUNNING by processes that are gone (tagged %s): %s",
                    len(reaped), REAPED_TAG, ", ".join(reaped))
    return reaped


def _gone(owner: str) -> bool:
    """Whether an owner of this host no longer runs; False for another host's."""
    try:
        host, pid, start = owner.split("/")
        pid_number = int(pid)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid_number, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    return _start_time(pid_number) != start  # the pid now belongs to another process


def _owner(host: str, pid: int) -> str:
    return f"{host}/{pid}/{_start_time(pid)}"


def _start_time(pid: int) -> str:
    """When ``pid`` started, in clock ticks since boot (Linux); ``?`` elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # the command name, in parentheses, may hold spaces: fields count after it
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"
