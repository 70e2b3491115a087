"""The chat scenario: support conversations on the notification sockets, and whether they delay status news.

    make bench BENCH_ARGS="--chat"     # 1,000 conversations, 200 messages/s, 10,000 idle sockets

Conversations: one order each, its customer's socket and a staff socket both watching it (`chat.open`; the staff
socket joins `support.order.<id>`). Staff: one socket per staff member, each watching its share of the
conversations (at most CHAT_CONVERSATIONS_PER_SOCKET), as a support agent's inbox tab does. Beside them, idle
customers' sockets. A paced sender (the load generators, open-loop) posts `chat.send` at a steady rate, each
conversation's messages alternating sides; each message is timed from the send to the other side's `chat.message`
(and to the sender's `chat.sent`). Status notifications are timed as in the latency run (bench/scenarios.py),
half to idle customers and half to the chatting ones, in phases without then with the chat, alternating, in one
run: what the chat costs them. Figures in docs/performance.md, "Support chat".
"""

import math
import time
import uuid
from bisect import bisect_left
from dataclasses import dataclass

from django.conf import settings
from limits import parse_many

from bench.data import Customer, StaffMember
from bench.load import Generators, Triggers
from bench.scenarios import DELIVERY_DEADLINE, POLL, latency, percentiles

# Seconds the chat runs before the status changes of its phase start and after they end: they meet a steady chat.
CHAT_MARGIN = 1.0
CHAT_LEAD = 0.5  # seconds from sending the schedules to the first message due, as the triggers' LEAD


@dataclass(frozen=True)
class ConversationSides:
    """One conversation of the scenario: the order's customer and the staff member whose socket watches it."""

    customer: Customer
    staff: StaffMember


@dataclass(frozen=True)
class ChatSend:
    due_at: float
    sender: int  # user id
    receiver: int  # the other side's user id
    order_id: int
    client_id: str


def conversation_sides(customers: list[Customer], staff: list[StaffMember]) -> list[ConversationSides]:
    """Conversation i to staff member i mod len(staff): each watches every len(staff)-th one."""
    per_socket = math.ceil(len(customers) / len(staff))
    if per_socket > settings.CHAT_CONVERSATIONS_PER_SOCKET:
        raise ValueError(
            f"{len(customers)} conversations over {len(staff)} staff sockets is {per_socket} each, over "
            f"CHAT_CONVERSATIONS_PER_SOCKET ({settings.CHAT_CONVERSATIONS_PER_SOCKET}): more staff"
        )
    return [ConversationSides(customer, staff[i % len(staff)]) for i, customer in enumerate(customers)]


def chat_schedule(sides: list[ConversationSides], *, rate: float, seconds: float, start_at: float) -> list[ChatSend]:
    """`rate` × `seconds` messages, one every 1/`rate` s from `start_at`, the conversations in turn.

    Message k goes to conversation k mod N in pass k div N; it is the customer's when the pass and the
    conversation's place in its staff member's share (c div S, with S staff) have the same parity, else the
    staff member's. So every conversation alternates sides from pass to pass, and a staff member's sends are
    spread, not bunched: every 2·S/rate s when each has an odd number of conversations (the default, 5), else
    in pairs. What the per-user limits see is a user's rate (`limits_exceeded`).
    """
    staff_count = len({side.staff.user_id for side in sides})
    sends = []
    for k in range(int(rate * seconds)):
        c = k % len(sides)
        side = sides[c]
        from_customer = (k // len(sides) + c // staff_count) % 2 == 0
        sender, receiver = (side.customer, side.staff) if from_customer else (side.staff, side.customer)
        sends.append(
            ChatSend(start_at + k / rate, sender.user_id, receiver.user_id, side.customer.order_id, str(uuid.uuid4()))
        )
    return sends


def busiest_window(sends: list[ChatSend], seconds: float) -> int:
    """The most messages one user sends within any `seconds` (a moving window, as the limits count), by the schedule."""
    by_user: dict[int, list[float]] = {}
    for send in sends:
        by_user.setdefault(send.sender, []).append(send.due_at)
    busiest = 0
    for times in by_user.values():
        for i, start in enumerate(times):  # due times are in order already
            busiest = max(busiest, bisect_left(times, start + seconds) - i)
    return busiest


def limits_exceeded(sends: list[ChatSend]) -> list[str]:
    """The servers' limits a user of this schedule would reach (their sends alone): a bench must stay within them.

    Reaching one counts, not only going over: a send that runs late can bring the next one into its window.
    """
    exceeded = []
    for name in ("CHAT_SEND_RATE_LIMIT", "NOTIFICATION_USER_RATE_LIMIT", "NOTIFICATION_SOCKET_RATE_LIMIT"):
        for limit in parse_many(getattr(settings, name)):
            most = busiest_window(sends, limit.get_expiry())
            if most >= limit.amount:
                exceeded.append(f"{name} {limit}: {most} sends by one user")
    return exceeded


def chat_against_notifications(
    generators: Generators,
    triggers: Triggers,
    servers: list,
    sides: list[ConversationSides],
    idle: list[Customer],
    *,
    rates: list[float],
    status_rate: float,
    seconds: float,
    rounds: int,
) -> dict:
    """Phases of `seconds` of status changes at `status_rate`: for each chat rate in `rates`, `rounds` times a phase
    without the chat then one with it at that rate.

    The conversations must be open (`generators.chat_open`). The status changes go to as many idle customers
    as there are chatting ones, alternately, so both groups' latency is measured alike. A phase begins once the
    one before has delivered everything (or given up after DELIVERY_DEADLINE).
    """
    chatting = [side.customer for side in sides]
    probed = idle[: len(chatting)]
    probe = [customer for pair in zip(probed, chatting, strict=False) for customer in pair]
    groups = {"idle": probed, "chatting": chatting[: len(probed)]}
    phases = []
    helpers = (generators, triggers, servers, sides, probe, groups)
    for rate in rates:
        for _ in range(rounds):
            for chat_rate in (0, rate):
                phases.append(_phase(*helpers, rate=chat_rate, status_rate=status_rate, seconds=seconds))
    return {
        "conversations": len(sides),
        "staff_sockets": len({side.staff.user_id for side in sides}),
        "idle_sockets": len(idle),
        "rates": rates,
        "status_rate": status_rate,
        "seconds": seconds,
        "margin_seconds": CHAT_MARGIN,
        "rounds": rounds,
        "phases": phases,
    }


def _phase(generators, triggers, servers, sides, probe, groups, *, rate, status_rate, seconds) -> dict:
    """One latency run of the status changes, with the chat at `rate` around it (0: none)."""
    sends = []
    if rate:
        generators.chat_collect()  # start from a clean slate
        start_at = time.time() + CHAT_LEAD
        sends = chat_schedule(sides, rate=rate, seconds=seconds + 2 * CHAT_MARGIN, start_at=start_at)
        generators.chat_run([[s.due_at, s.sender, s.order_id, s.client_id] for s in sends])
        time.sleep(max(0.0, start_at + CHAT_MARGIN - time.time()))  # the chat is under way when the changes start
    status = latency(generators, triggers, servers, probe, rate=status_rate, seconds=seconds, groups=groups)
    return {
        "with_chat": bool(rate),
        "chat_rate": rate,
        "status": {key: status[key] for key in STATUS_FIGURES},
        "chat": chat_deliveries(generators, sends) if sends else None,
    }


STATUS_FIGURES = ("changes", "achieved_rate", "changes_late", "received", "lost", "duplicates", "foreign_frames",
                  "latency_ms", "latency_ms_by_group", "server_cpu_ms_per_notification", "server_cpu_wait_share",
                  "machine_cpu_busy", "publish_ms")  # fmt: skip


def chat_deliveries(generators: Generators, sends: list[ChatSend]) -> dict:
    """Wait until every message reached the other side (or the deadline); latency, acks, loss, duplicates, leaks."""
    expected = {send.client_id: send for send in sends}
    sent_at: dict[str, float | None] = {}
    acked: dict[str, float] = {}
    received: dict[str, float] = {}
    duplicates = foreign = late = 0
    errors: dict[str, int] = {}
    end = time.monotonic() + DELIVERY_DEADLINE
    while True:
        collected = generators.chat_collect()
        late += collected["late"]
        for code, count in collected["errors"].items():
            errors[code] = errors.get(code, 0) + count
        sent_at.update((client_id, at) for client_id, _user_id, at in collected["sends"])
        for client_id, user_id, at in collected["acks"]:
            if client_id in expected and user_id == expected[client_id].sender:
                acked.setdefault(client_id, at)
        for user_id, _order_id, _seq, client_id, at in collected["received"]:
            send = expected.get(client_id)
            if send is None or user_id != send.receiver:
                foreign += 1  # another conversation's, or its sender's own back: neither should reach this socket
            elif client_id in received:
                duplicates += 1
            else:
                received[client_id] = at
        made = [client_id for client_id, at in sent_at.items() if at is not None]
        done = not collected["running"] and len(sent_at) == len(sends)
        if (done and received.keys() >= set(made) and acked.keys() >= set(made)) or time.monotonic() > end:
            break
        time.sleep(POLL)
    made = [client_id for client_id, at in sent_at.items() if at is not None]
    times = [sent_at[client_id] for client_id in made]
    return {
        "messages": len(sends),
        "sent": len(made),
        "not_sent": len(sends) - len(made),  # the socket was gone, or the schedule was cut short
        "sent_late": late,
        "achieved_rate": (len(times) - 1) / (max(times) - min(times)) if len(times) > 1 else 0.0,
        # What the server got through: messages acked per second, from the first send to the last `chat.sent`.
        "served_rate": len(acked) / (max(acked.values()) - min(times)) if acked and times else 0.0,
        "received": sum(1 for client_id in made if client_id in received),
        "lost": sum(1 for client_id in made if client_id not in received),
        "duplicates": duplicates,
        "foreign_frames": foreign,
        "errors": errors,
        "unacked": sum(1 for client_id in made if client_id not in acked),
        "latency_ms": _ms([received[c] - sent_at[c] for c in made if c in received]),
        "ack_ms": _ms([acked[c] - sent_at[c] for c in made if c in acked]),
        # The median of each tenth of the run, in the order sent: flat if the server keeps up, rising if it queues.
        "p50_ms_by_tenth": [
            _ms([received[c] - sent_at[c] for c in tenth if c in received]).get("p50")
            for tenth in _tenths(sorted(made, key=sent_at.__getitem__))
        ],
    }


def _tenths(items: list) -> list[list]:
    return [items[len(items) * i // 10 : len(items) * (i + 1) // 10] for i in range(10)]


def _ms(seconds: list[float]) -> dict:
    return {name: value * 1000 for name, value in percentiles(seconds).items()}


def chat_bench(args, env_base: dict, log_dir) -> dict:
    """make bench BENCH_ARGS="--chat": the stack on one daphne process, the sockets, then the phases."""
    from bench import scenarios
    from bench.data import conversations_create, customers_create, staff_create
    from bench.run import use_layer
    from bench.stack import server_env, start_web, start_worker

    run = uuid.uuid4().hex[:8]
    print(f"Creating {args.sockets} idle customers, {args.chat_conversations} chatting and {args.chat_staff} staff...",
          flush=True)  # fmt: skip
    idle = customers_create(args.sockets, run=run)
    chatting = customers_create(args.chat_conversations, run=f"{run}-chat")
    staff = staff_create(args.chat_staff, run=run)
    conversations_create([customer.order_id for customer in chatting])
    sides = conversation_sides(chatting, staff)
    exceeded = limits_exceeded(chat_schedule(sides, rate=max(args.chat_rate), seconds=60, start_at=0.0))
    if exceeded:
        raise SystemExit("The chat would go over the servers' limits: " + "; ".join(exceeded) + ". More staff?")

    env = server_env(**env_base, run=run, layer="pubsub")
    use_layer(env_base["redis_url"], "pubsub", env["CHANNEL_LAYER_PREFIX"])
    server = worker = generators = triggers = None
    try:
        server = start_web("daphne", f"daphne-chat-{run}", env, log_dir)
        worker = start_worker(f"worker-chat-{run}", env, log_dir)
        print(f"   web server pid: {server.pid} (for py-spy)", flush=True)
        generators = Generators(args.generators)
        triggers = Triggers(args.triggers, env, niceness=args.trigger_niceness)
        storm = scenarios.storm(generators, [server], [*idle, *chatting, *staff], concurrency=args.concurrency)
        print(f"   storm: {storm['connected']:,} of {storm['clients']:,} connected, failures {storm['failures']}",
              flush=True)  # fmt: skip
        if storm["failures"]:
            raise SystemExit("Not every socket connected: the figures would not be of the scenario asked for.")
        watches = [[user_id, side.customer.order_id] for side in sides for user_id in (side.customer.user_id,
                   side.staff.user_id)]  # fmt: skip
        opened = generators.chat_open(watches)
        print(f"   chat.open: {opened['opened']:,} of {len(watches):,}, errors {opened['errors']}", flush=True)
        result = chat_against_notifications(
            generators, triggers, [server], sides, idle, rates=args.chat_rate, status_rate=args.chat_status_rate,
            seconds=args.chat_seconds, rounds=args.chat_rounds,
        )  # fmt: skip
        for phase in result["phases"]:
            _show_phase(phase)
        return {**result, "storm": {key: storm[key] for key in ("clients", "connected", "failures", "seconds")},
                "opened": opened, "staff_news": generators.stats().get("staff_news")}  # fmt: skip
    finally:
        for helpers in (generators, triggers):
            if helpers:
                helpers.close()
        for process in (server, worker):
            if process:
                process.stop()


def _show_phase(phase: dict) -> None:
    status = phase["status"]
    by_group = ", ".join(
        f"{name} p50 {figures.get('p50', 0):.1f} p99 {figures.get('p99', 0):.1f} ms"
        for name, figures in status["latency_ms_by_group"].items()
    )
    line = f"   {'with' if phase['with_chat'] else 'without'} chat: status {by_group}, lost {status['lost']}"
    if phase["chat"]:
        chat = phase["chat"]
        ms, ack = chat["latency_ms"], chat["ack_ms"]
        line += (
            f"; chat {chat['sent']:,} at {chat['achieved_rate']:.0f}/s (served {chat['served_rate']:.0f}/s), "
            f"p50 {ms.get('p50', 0):.1f} p99 {ms.get('p99', 0):.1f} max {ms.get('max', 0):.1f} ms, "
            f"ack p99 {ack.get('p99', 0):.1f} ms, lost {chat['lost']}, duplicates {chat['duplicates']}, "
            f"foreign {chat['foreign_frames']}, errors {chat['errors']}"
        )
    print(line, flush=True)
