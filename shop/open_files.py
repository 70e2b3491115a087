"""How many files a process may open: every WebSocket is one, in the web process and in the bench's clients."""

import resource


def open_files_limit_raise() -> int:
    """Lift this process's soft limit on open files to its hard limit; returns the limit now in force.

    Each socket is a file descriptor, and processes often start with a soft limit of 1,024 (a systemd
    service, a Docker 25+ container) under a hard limit hundreds of times that (524,288 in both): the
    1,025th customer would be turned away. The low soft limit protects programs that use select(), which
    cannot watch a higher descriptor; twisted's asyncio reactor uses epoll. Any process may raise its own
    soft limit up to the hard one; the hard one is the operator's (`LimitNOFILE=`, compose's `ulimits`).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft  # macOS: an unlimited hard limit cannot be the soft one
    return hard
