"""`make bench BENCH_ARGS="--handshakes"`: what a connect ticket saves a handshake, A/B on one web process.

One daphne process of the shop (pub/sub layer), stormed by the same logged-in customers again and again, the
storms alternating: `cookie`, the session cookie alone (Channels' AuthMiddleware reads the session and the user,
the consumer reads the session again once joined); `ticket`, the cookie and the connect ticket a page renders
(notifications/tickets.py: one read for the session, the user and the resume). With --handshake-baseline a second
process serves a checkout of the shop from before tickets, stormed in each round too by the cookie alone
(`baseline`: today's handshake). Between storms every socket is closed.

The tickets are minted here, as the page would (the bench shares the servers' SECRET_KEY), all before their storm;
the servers accept them for longer than a page's (TICKET_MAX_AGE) so that a storm slowed by a busy machine
measures tickets, not their expiry: the connect's check costs the same at any age.
"""

import uuid
from pathlib import Path

from bench.data import Customer

TICKET_MAX_AGE = 900  # seconds; the shop's own is a minute (NOTIFICATION_SOCKET_TICKET_MAX_AGE)


def connect_tickets(customers: list[Customer]) -> dict[int, str]:
    """The ticket each customer's page would render (their bench sessions have no socket id: it is their key)."""
    from accounts.models import User
    from notifications.services import session_digest
    from notifications.tickets import session_auth_digest, socket_ticket_sign

    hashes = {user.pk: session_auth_digest(user) for user in User.objects.filter(pk__in=[c.user_id for c in customers])}
    return {
        c.user_id: socket_ticket_sign(
            user_id=c.user_id,
            session_key=c.session_key,
            socket_session=session_digest(c.session_key),
            auth_digest=hashes[c.user_id],
        )
        for c in customers
    }


def handshakes_ab(args, customers: list[Customer], env_base: dict, log_dir: Path) -> dict:
    """Alternate storms without and with tickets on one server; each storm's rate and server CPU per handshake."""
    from bench import scenarios
    from bench.load import Generators
    from bench.stack import server_env, start_web

    env = {
        **server_env(**env_base, run=uuid.uuid4().hex[:8], layer="pubsub"),
        "NOTIFICATION_SOCKET_TICKET_MAX_AGE": str(TICKET_MAX_AGE),
    }
    clients = customers[: args.handshake_sockets]
    print(f"\n== handshakes A/B, {len(clients)} sockets per storm, {args.handshake_rounds} rounds", flush=True)
    servers = {"cookie": start_web("daphne", "handshakes", env, log_dir)}
    servers["ticket"] = servers["cookie"]
    storms = []
    try:
        if args.handshake_baseline:
            servers["baseline"] = start_web(
                "daphne", "handshakes-baseline", env, log_dir, cwd=Path(args.handshake_baseline)
            )
        print(
            f"   web server pids: { {path: server.pid for path, server in servers.items()} } (for py-spy)", flush=True
        )
        for round_number in range(1, args.handshake_rounds + 1):
            for path in servers:
                tickets = connect_tickets(clients) if path == "ticket" else None
                with Generators(args.generators) as generators:
                    storm = scenarios.storm(
                        generators, [servers[path]], clients, concurrency=args.concurrency, tickets=tickets
                    )
                storm.pop("failed_user_ids")
                storms.append({"round": round_number, "path": path, **storm})
                print(
                    f"   round {round_number} {path}: {storm['connected']} connected, "
                    f"{storm['handshakes_per_second']:.1f}/s, {storm['server_cpu_ms_per_handshake']:.2f} ms CPU each, "
                    f"machine {storm['machine_cpu_busy']:.0%} busy, failures {storm['failures']}",
                    flush=True,
                )
    finally:
        for server in {id(server): server for server in servers.values()}.values():
            server.stop()
    baseline = str(args.handshake_baseline) if args.handshake_baseline else None
    return {"sockets": len(clients), "rounds": args.handshake_rounds, "baseline": baseline, "storms": storms,
            "summary": _summary(storms)}  # fmt: skip


def _summary(storms: list[dict]) -> dict:
    """Per path: the sums over its storms (handshakes/s as handshakes over seconds), and B over A."""
    paths = {}
    for path in dict.fromkeys(storm["path"] for storm in storms):
        mine = [storm for storm in storms if storm["path"] == path]
        connected = sum(storm["connected"] for storm in mine)
        seconds = sum(storm["seconds"] for storm in mine)
        cpu_ms = sum(storm["server_cpu_ms_per_handshake"] * storm["connected"] for storm in mine)
        paths[path] = {
            "connected": connected,
            "failures": sum(sum(storm["failures"].values()) for storm in mine),
            "handshakes_per_second": connected / seconds if seconds else 0.0,
            "server_cpu_ms_per_handshake": cpu_ms / connected if connected else None,
        }
    ticket = paths["ticket"]
    summary = {**paths, "gain_over": {}}
    for before in (path for path in paths if path != "ticket"):
        summary["gain_over"][before] = {
            "rate_ratio": ticket["handshakes_per_second"] / paths[before]["handshakes_per_second"],
            "cpu_ratio": paths[before]["server_cpu_ms_per_handshake"] / ticket["server_cpu_ms_per_handshake"],
        }
    return summary
