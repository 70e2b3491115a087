"""Writes a bench run out: results.json, two PNG plots, and the results table in docs/performance.md."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt


def doc_section_replace(doc: Path, markers: tuple[str, str], text: str) -> None:
    """Put `text` between the page's two markers, in place of what a run before wrote there."""
    start, end = markers
    before, rest = doc.read_text().split(start, 1)
    _, after = rest.split(end, 1)
    doc.write_text(before + start + "\n" + text + end + after)


def write_report(report: dict, out: Path, doc: Path, markers: tuple[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    primary = report["results"][0]
    _plot_latency(primary.get("ramp", []), out / "latency-vs-connections.png")
    _plot_bursts(primary.get("bursts", []), out / "burst-throughput.png")
    doc_section_replace(doc, markers, results_markdown(report))


def results_markdown(report: dict) -> str:
    machine = report["machine"]
    args = report["arguments"]
    lines = [
        f"Measured {report['started']} in {report['minutes']} minutes on {machine['cores']} cores "
        f"({machine['cpu']}), {machine['memory_gib']} GiB, Python {machine['python']}; the load generators "
        f"({args['generators']} processes) ran on the same machine. Command: `{report['command']}`.",
        "",
        "| Configuration | Connected | Handshakes/s (server CPU each) | HTTP 5xx / other failures | Open after hold "
        "| KB per socket "
        "| Latency p50 / p95 / p99 / max (ms) | Burst: K, last delivered after | Burst notifications/s | Lost "
        "| Generator CPU (each) / machine busy in storm |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in report["results"]:
        storm, hold, latency, burst = result["storm"], result["hold"], result["latency"], result["burst"]
        other_failures = sum(count for kind, count in storm["failures"].items() if not kind.startswith("http_5"))
        ms = latency["latency_ms"]
        lines.append(
            f"| {result['label']} | {storm['connected']:,} / {storm['clients']:,} "
            f"| {storm['handshakes_per_second']:.0f} ({_cpu_ms(storm)}) | {storm['http_5xx']} / {other_failures} "
            f"| {hold['open_at_end']:,} after {hold['seconds']:.0f} s | {hold['kb_per_socket']:.1f} "
            f"| {ms.get('p50', 0):.1f} / {ms.get('p95', 0):.1f} / {ms.get('p99', 0):.1f} / {ms.get('max', 0):.1f} "
            f"at {latency['achieved_rate']:.0f}/s ({_triggers(latency)}) "
            f"| {burst['size']:,} in {_seconds(burst['commit_to_last_received_seconds'])} "
            f"(bulk action {burst['bulk_action_seconds']:.1f} s) "
            f"| {burst['notifications_per_second']:,.0f} | {latency['lost'] + burst['lost']} "
            f"| {storm['generator_cpu_share']:.0%} / {_share(storm.get('machine_cpu_busy'))} |"
        )
    scale_out = scale_out_markdown(report["results"])
    if scale_out:
        lines += ["", scale_out]
    receipts = acks_markdown(report["results"][0].get("acks"))
    if receipts:
        lines += ["", receipts]
    if report.get("ladder"):
        lines += ["", *ladder_markdown(report["ladder"])]
    lines += ["", "![Latency percentiles vs connections](performance/latency-vs-connections.png)", ""]
    lines += ["![Burst throughput vs K](performance/burst-throughput.png)", ""]
    return "\n".join(lines) + "\n"


def write_chat_report(report: dict, out: Path, doc: Path, markers: tuple[str, str]) -> None:
    """make bench BENCH_ARGS="--chat": chat.json, and its table in docs/performance.md ("Support chat")."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "chat.json").write_text(json.dumps(report, indent=2) + "\n")
    doc_section_replace(doc, markers, chat_markdown(report))


def write_handshakes_report(report: dict, out: Path, doc: Path, markers: tuple[str, str]) -> None:
    """make bench BENCH_ARGS="--handshakes": handshakes.json, and its table in docs/performance.md."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "handshakes.json").write_text(json.dumps(report, indent=2) + "\n")
    doc_section_replace(doc, markers, handshakes_markdown(report))


def handshakes_markdown(report: dict) -> str:
    """One row per storm, then each path's totals and the ticket's gain."""
    result, machine = report["handshakes"], report["machine"]
    lines = [
        f"Measured {report['started']} in {report['minutes']} minutes on {machine['cores']} cores ({machine['cpu']}), "
        f"Python {machine['python']}, one daphne process (pub/sub layer); the load generators ran on the same "
        f"machine. Command: `{report['command']}`. {result['sockets']:,} logged-in customers per storm, every "
        f"socket closed between storms, {result['rounds']} rounds alternating the session cookie alone (A) and the "
        "cookie with the page's connect ticket (B).",
        "",
        "Paths: `baseline` the shop before tickets, `cookie` this version by the session cookie alone, `ticket` "
        "this version with the cookie and the page's ticket.",
        "",
        "| round | path | connected | handshakes/s | server CPU per handshake | machine busy | failures |",
        "|---|---|---|---|---|---|---|",
    ]
    for storm in result["storms"]:
        lines.append(
            f"| {storm['round']} | {storm['path']} | {storm['connected']:,} / {storm['clients']:,} "
            f"| {storm['handshakes_per_second']:.0f} | {storm['server_cpu_ms_per_handshake']:.2f} ms "
            f"| {storm['machine_cpu_busy']:.0%} | {sum(storm['failures'].values())} |"
        )
    summary = result["summary"]
    paths = [path for path in summary if path != "gain_over"]
    for path in paths:
        figures = summary[path]
        lines.append(
            f"| all | **{path}** | {figures['connected']:,} | **{figures['handshakes_per_second']:.0f}** "
            f"| **{figures['server_cpu_ms_per_handshake']:.2f} ms** | | {figures['failures']} |"
        )
    lines.append("")
    names = {
        "cookie": "this version's cookie alone",
        "baseline": f"the shop before tickets (`{result.get('baseline')}`)",
    }
    for before, gain in summary["gain_over"].items():
        lines.append(
            f"With tickets, against {names.get(before, before)}: **{gain['rate_ratio']:.2f}×** the handshakes per "
            f"second and **{gain['cpu_ratio']:.2f}×** as many handshakes per second of the server's CPU, same run."
        )
    lines.append("")
    return "\n".join(lines)


def chat_markdown(report: dict) -> str:
    """One row per phase: the chat's latency (in the phases with it) beside the status notifications'."""
    chat, machine = report["chat"], report["machine"]
    lines = [
        f"Measured {report['started']} in {report['minutes']} minutes on {machine['cores']} cores ({machine['cpu']}), "
        f"Python {machine['python']}, one daphne process; the load generators ran on the same machine. "
        f"Command: `{report['command']}`. {chat['conversations']:,} conversations (customer and staff sockets "
        f"watching each), {chat['staff_sockets']:,} staff sockets, {chat['idle_sockets']:,} idle sockets; status "
        f"changes at {chat['status_rate']:g}/s for {chat['seconds']:g} s per phase, half to idle customers and half "
        f"to chatting ones; the chat from {chat['margin_seconds']:g} s before to "
        f"{chat['margin_seconds']:g} s after them.",
        "",
        "| phase | chat: sent, at, served (acked per second) | chat: send to the other side p50 / p99 / max (ms) "
        "| chat: send to `chat.sent` p50 / p99 (ms) | chat: lost / twice / errors "
        "| status to idle sockets p50 / p99 / max (ms) | status to chatting customers p50 / p99 / max (ms) "
        "| status lost | web waiting for a core | machine busy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for number, phase in enumerate(chat["phases"], start=1):
        status, talk = phase["status"], phase["chat"]
        groups = status["latency_ms_by_group"]
        waits = [share for share in status["server_cpu_wait_share"] if share is not None]
        if talk:
            chat_cells = (
                f"{talk['sent']:,} at {talk['achieved_rate']:.0f}/s, served {talk['served_rate']:.0f}/s "
                f"| {_p(talk['latency_ms'], 'p50', 'p99', 'max')} | {_p(talk['ack_ms'], 'p50', 'p99')} "
                f"| {talk['lost']} / {talk['duplicates']} / {sum(talk['errors'].values())}"
            )
        else:
            chat_cells = "— | — | — | —"
        name = f"chat at {phase['chat_rate']:g}/s" if talk else "no chat"
        lines.append(
            f"| {number}: {name} | {chat_cells} "
            f"| {_p(groups['idle'], 'p50', 'p99', 'max')} | {_p(groups['chatting'], 'p50', 'p99', 'max')} "
            f"| {status['lost']} of {status['changes']:,} | {_share(max(waits) if waits else None)} "
            f"| {_share(status['machine_cpu_busy'])} |"
        )
    return "\n".join(lines) + "\n"


def _p(figures: dict, *names: str) -> str:
    return " / ".join("—" if figures.get(name) is None else f"{figures[name]:.1f}" for name in names)


def acks_markdown(acks: dict | None) -> str | None:
    """What delivery receipts cost the web server per notification, from the back-to-back latency runs."""
    if not acks or acks.get("overhead") is None:
        return None
    return (
        "Delivery receipts (the first configuration): with every client acknowledging each notification, the web "
        f"server spent {acks['acked_server_cpu_ms_per_notification']:.3f} ms of CPU per notification, against "
        f"{acks['plain_server_cpu_ms_per_notification']:.3f} ms without ({acks['overhead']:+.1%}); "
        f"{acks['rounds']} round(s) of {acks['seconds']:.0f} s at {acks['rate']:.0f}/s without then with acks, "
        f"{acks['clients']:,} sockets, {acks['acks_sent']:,} acks, {acks['recorded_delivered']:,} of "
        f"{acks['received_with_acks']:,} notifications recorded delivered."
    )


def scale_out_markdown(results: list[dict]) -> str | None:
    """Two processes against one, and about what two could take with every core of this machine busy.

    The storms run the web processes, PostgreSQL, Redis and the generators on the same cores. A storm that
    kept them busy a share `busy` of the time would go about 1 / busy times as fast with every core busy, if
    each handshake cost the machine as much CPU: an estimate of the most two processes could show here, not a
    bound (that cost moves between storms).
    """
    two = next((r for r in results if r["processes"] == 2), None)
    one = two and next(
        (r for r in results if r["processes"] == 1 and (r["server"], r["layer"]) == (two["server"], two["layer"])),
        None,
    )
    if not one or not one["storm"]["handshakes_per_second"]:
        return None
    ratio = two["storm"]["handshakes_per_second"] / one["storm"]["handshakes_per_second"]
    text = (
        f"Scale-out ({two['server']} + {two['layer']}): two processes took {ratio:.2f}× the handshakes per second "
        f"of one ({two['storm']['handshakes_per_second']:.0f} vs {one['storm']['handshakes_per_second']:.0f})."
    )
    busy = two["storm"].get("machine_cpu_busy")  # absent from results written before it was measured
    if busy:
        text += (
            f" Their storm kept the machine {busy:.0%} busy: with every core busy, at the same CPU per handshake,"
            f" about {ratio / busy:.2f}×."
        )
    return text


def write_scaling_report(report: dict, out: Path, doc: Path, markers: tuple[str, str]) -> None:
    """scaling.json (the run before kept as scaling-previous.json), and its table in docs/performance.md."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "scaling.json"
    if path.exists():
        path.replace(out / "scaling-previous.json")
    path.write_text(json.dumps(report, indent=2) + "\n")
    doc_section_replace(doc, markers, scaling_markdown(report) + "\n")


def scaling_markdown(report: dict) -> str:
    """One row per server and socket count: what a handshake, a socket and a notification cost as sockets grow."""
    machine, args = report["machine"], report["arguments"]
    lines = [
        f"Measured {report['started']} in {report['minutes']} minutes on {machine['cores']} cores ({machine['cpu']}), "
        f"Python {machine['python']}, one web process on the pub/sub layer; the load generators ran on the same "
        f"machine. Command: `{report['command']}`. Latency: {args['rate']:g} changes/s for 10 s over every socket "
        "held. Stalls: no event-loop probe in this branch, so the column counts deliveries later than 100 ms.",
        "",
        "| Server | Sockets | Open | Storm: handshakes/s (server CPU each) | KB per socket "
        "| Latency p50 / p99 / max (ms) | Deliveries > 100 ms (stalls) | Lost | Web waiting for a core "
        "| Machine busy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in report["scaling"]:
        for stage in result["stages"]:
            storm, latency = stage["storm"], stage["latency"]
            wait = (latency.get("server_cpu_wait_share") or [None])[0]
            lines.append(
                f"| {result['server']} | {stage['sockets']:,} | {stage['open']:,} "
                f"| {storm['handshakes_per_second']:,.0f} ({_cpu_ms(storm)}) | {stage['kb_per_socket']:.1f} "
                f"| {_p(latency['latency_ms'], 'p50', 'p99', 'max')} | {latency['late']:,} of {latency['received']:,} "
                f"| {latency['lost']} | {_share(wait)} | {_share(latency['machine_cpu_busy'])} |"
            )
        if result.get("error"):  # after the counts it survived
            lines.append(f"| {result['server']} | failed: {result['error']} |||||||||")
    return "\n".join(lines) + "\n"


def ladder_markdown(rungs: list[dict]) -> list[str]:
    """One daphne process with its layers taken away (bench/floor.py): what each costs a handshake and a socket."""
    sockets = rungs[0]["storm"]["clients"]
    lines = [
        f"The ladder: one daphne process, {sockets:,} sockets per rung, each rung adding a layer to the one above.",
        "",
        "| Rung | Adds | Connected | Handshakes/s | Server CPU per handshake | KB per socket |",
        "|---|---|---|---|---|---|",
    ]
    for rung in rungs:
        storm, hold = rung["storm"], rung["hold"]
        lines.append(
            f"| {rung['rung']} | {rung['adds']} | {storm['connected']:,} / {storm['clients']:,} "
            f"| {storm['handshakes_per_second']:,.0f} | {_cpu_ms(storm)} "
            f"| {hold['kb_per_socket']:.1f} |"
        )
    return lines


def _cpu_ms(storm: dict) -> str:
    cpu = storm.get("server_cpu_ms_per_handshake")  # absent from results written before it was measured
    return "—" if cpu is None else f"{cpu:.2f} ms"


def _triggers(latency: dict) -> str:
    """Who offered the changes, at what CPU each, and how crowded the machine was meanwhile."""
    processes = latency.get("trigger_processes", 1)  # results written before it was measured had one
    triggers = f"{processes} trigger{'s' if processes > 1 else ''}"
    if "trigger_niceness" in latency:  # absent from results written before it was recorded
        triggers += f" at nice {latency['trigger_niceness']}"
    parts = [
        triggers,
        f"{latency.get('trigger_cpu_ms_per_change', 0):.1f} ms CPU/change",
        f"machine {_share(latency.get('machine_cpu_busy'))} busy",
    ]
    waits = [share for share in latency.get("server_cpu_wait_share", []) if share is not None]
    if waits:
        parts.append(f"web waiting for a core {_share(max(waits))}")
    stalls = _stalls(latency)
    if stalls:
        parts.append(stalls)
    return ", ".join(parts)


def _stalls(latency: dict) -> str:
    """The web servers' event-loop stalls over 30 ms during the run, and the worst one's bounds (shop/loop_lag.py)."""
    measured = [stalls for stalls in latency.get("server_loop_stalls", []) if stalls]
    if not measured:
        return ""  # uvicorn runs no probe, and results written before it had none
    worst = max(measured, key=lambda stalls: stalls["worst_ms_at_most"])
    bounds = f"{worst['worst_ms_over']:.0f}–{worst['worst_ms_at_most']:.0f} ms"
    if worst["worst_ms_at_most"] == float("inf"):
        bounds = f"over {worst['worst_ms_over']:.0f} ms"
    return f"web loop stalls over 30 ms: {sum(stalls['over_30ms'] for stalls in measured)} (worst {bounds})"


def _share(value) -> str:
    return "—" if value is None else f"{value:.0%}"


def _seconds(value) -> str:
    return "—" if value is None else f"{value:.1f} s"


def _plot_latency(points: list[dict], path: Path) -> None:
    x = [point["connections"] for point in points]
    series = {key: [point.get(key, 0) for point in points] for key in ("p50", "p95", "p99", "max")}
    labels = ("connected sockets (one daphne process)", "commit-to-client latency (ms)")
    _plot(x, series, labels, "Latency at a steady rate of status changes", path)


def _plot_bursts(bursts: list[dict], path: Path) -> None:
    x = [burst["size"] for burst in bursts]
    series = {"delivered per second": [burst["notifications_per_second"] for burst in bursts]}
    labels = ("orders changed by one bulk action (K)", "notifications per second, commit to last frame")
    _plot(x, series, labels, "Burst throughput (one daphne process)", path)


def _plot(x: list, series: dict[str, list], labels: tuple[str, str], title: str, path: Path) -> None:
    figure, axes = plt.subplots(figsize=(7, 4))
    for label, values in series.items():
        axes.plot(x, values, marker="o", label=label)
    axes.set_xlabel(labels[0])
    axes.set_ylabel(labels[1])
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_soak_report(
    report: dict, out: Path, doc: Path, markers: tuple[str, str], name: str = "soak", table: bool = True
) -> None:
    """make soak's run: <name>.json, <name>.png, and (`table`) its table in docs/operations.md."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    _plot_soak(report, out / f"{name}.png")
    if not table:
        return
    doc_section_replace(doc, markers, soak_markdown(report))


def soak_markdown(report: dict) -> str:
    args, verdict, delivery = report["arguments"], report["verdict"], report["delivery"]
    samples, checks = report["samples"], verdict["checks"]
    after = [s for s in samples if s["minute"] >= verdict["warmup_minutes"]]
    machine = report["machine"]
    rss, keys = [s["rss_mb"] for s in after], [s["redis_keys"] for s in after]
    redis_mb = [s["redis_used_memory_mb"] for s in after]
    open_during = [s["ws_connections"] for s in samples[1:-1] if s["ws_connections"] is not None] or [0]
    lines = [
        f"Measured {report['started']} in {report['minutes']} minutes on {machine['cores']} cores ({machine['cpu']}), "
        f"shared with other work; Python {machine['python']}. Command: `{report['command']}`. "
        f"{args['sockets']:,} sockets, {args['churn']:g} closing and coming back a second, {args['changes']:g} "
        f"changes a second asked ({report['changes_per_second']:g} made, {report['changes_late']:,} changes late), "
        f"for {args['minutes']:g} minutes; a sample every {args['sample_seconds']:g} s, the first "
        f"{verdict['warmup_minutes']:.3g} minutes left out as warm-up. Verdict: "
        f"**{'passed' if verdict['passed'] else 'FAILED'}**.",
        "",
        "| figure | after warm-up | limit | verdict |",
        "| --- | --- | --- | --- |",
        f"| web process RSS | {min(rss):.1f}–{max(rss):.1f} MB, slope {_signed(verdict['rss_mb_per_10_minutes'])} "
        f"MB per 10 min | {verdict['max_rss_mb_per_10_minutes']:g} MB per 10 min | {_ok(checks['rss'])} |",
        f"| Redis keys (DBSIZE) | {min(keys):,}–{max(keys):,}, of which users' open sockets at most "
        f"{verdict['redis_most_user_socket_keys']:,}; the others, the last {verdict['redis_keys_compared_samples']} "
        f"samples' most against the first's: {_signed(verdict['redis_other_keys_growth'], '.0f')} "
        f"| others {verdict['max_redis_keys_growth']:+d}, sockets' at most one per socket "
        f"| {_ok(checks['redis_keys'])} |",
        f"| Redis used_memory | {min(redis_mb):.2f}–{max(redis_mb):.2f} MB, slope "
        f"{_signed(verdict['redis_used_memory_mb_per_10_minutes'], '.2f')} MB per 10 min | — | (reported) |",
        f"| notifications | {delivery['notifications']:,} stored for {delivery['users']:,} customers "
        f"({report['changes']:,} changes), {delivery['received']:,} received: {delivery['lost']} lost, "
        f"{delivery['duplicates']} twice, {delivery['out_of_order']} out of order, {delivery['unknown']} unknown, "
        f"{report['foreign_frames']} foreign | every customer's exactly, in order | {_ok(checks['delivery'])} |",
        f"| sockets | {min(open_during):,.0f}–{max(open_during):,.0f} open on the server during the run; "
        f"{samples[-1]['churned']:,} closed and {report['generators']['reconnects']:,} came back; "
        f"all {samples[-1]['ws_connections']:,.0f} back {report['settle_seconds']:g} s after the end, "
        f"{report['generators']['resets']} resets | all back, no reset | {_ok(checks['sockets'])} |",
        "",
        "![RSS, sockets and Redis during the soak](performance/soak.png)",
        "",
    ]
    return "\n".join(lines)


def _signed(value, spec: str = ".1f") -> str:
    return "—" if value is None else format(value, "+" + spec)


def _ok(passed: bool) -> str:
    return "met" if passed else "**not met**"


def _plot_soak(report: dict, path: Path) -> None:
    samples, warmup = report["samples"], report["verdict"]["warmup_minutes"]
    minutes = [s["minute"] for s in samples]
    figure, (memory, sockets, keys) = plt.subplots(3, 1, figsize=(7, 7.5), sharex=True)
    memory.plot(minutes, [s["rss_mb"] for s in samples], marker="o", label="web process RSS")
    memory.set_ylabel("web process RSS (MB)")
    redis_memory = memory.twinx()  # a few MB beside a few hundred: an axis of its own
    redis_memory.plot(minutes, [s["redis_used_memory_mb"] for s in samples], marker=".", color="tab:orange",
                      label="Redis used_memory")  # fmt: skip
    redis_memory.set_ylabel("Redis used_memory (MB)")
    sockets.plot(minutes, [s["ws_connections"] for s in samples], marker="o", label="open (shop_ws_connections)")
    sockets.plot(minutes, [s["client_open"] for s in samples], marker=".", label="open (the clients' count)")
    sockets.set_ylabel("sockets")
    keys.plot(minutes, [s["redis_keys"] for s in samples], marker="o", label="Redis keys (DBSIZE)")
    keys.set_ylabel("keys")
    others = keys.twinx()
    others.plot(minutes, [s["redis_keys"] - s["redis_user_socket_keys"] for s in samples], marker=".",
                color="tab:green", label="keys other than users' open sockets")  # fmt: skip
    others.set_ylabel("other keys")
    keys.set_xlabel("minutes")
    for axes, twin in ((memory, redis_memory), (sockets, None), (keys, others)):
        axes.axvspan(0, warmup, color="grey", alpha=0.15, label="warm-up")
        axes.grid(True, alpha=0.3)
        handles, labels = axes.get_legend_handles_labels()
        if twin is not None:
            more_handles, more_labels = twin.get_legend_handles_labels()
            handles, labels = handles + more_handles, labels + more_labels
        axes.legend(handles, labels, fontsize="small", loc="lower right")
    memory.set_title(f"Soak: {report['arguments']['sockets']:,} sockets, one daphne process")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_producer_report(report: dict, out: Path, doc: Path, markers: tuple[str, str]) -> None:
    """make bench BENCH_ARGS="--producer": producer.json (the one before it kept beside it), and its section."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "producer.json"
    previous = json.loads(path.read_text()) if path.exists() else None
    if previous is not None:
        (out / "producer-previous.json").write_text(json.dumps(previous, indent=2) + "\n")
    path.write_text(json.dumps(report, indent=2) + "\n")
    doc_section_replace(doc, markers, producer_markdown(report, previous))


def producer_markdown(report: dict, previous: dict | None) -> str:
    """One row per pattern and round, then each pattern's range beside the previous run's."""
    producer, machine = report["producer"], report["machine"]
    lines = [
        f"Measured {report['started']} (code {report.get('code', '?')}) in {report['minutes']} minutes on "
        f"{machine['cores']} cores ({machine['cpu']}), Python {machine['python']}, one daphne process, "
        f"{producer['storm']['connected']:,} customers connected, one trigger process at nice "
        f"{producer['trigger_niceness']}; the load generators ran on the same machine. Command: `{report['command']}`.",
        "",
        "| round | pattern | changes | first change to last frame (s) | changes/s | producer CPU per change (ms) "
        "| COMMIT to Redis p50 / p99 (ms) | COMMIT to frame p50 / p99 (ms) | lost / twice |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in producer["runs"]:
        seconds = "—" if run["seconds_to_last_frame"] is None else f"{run['seconds_to_last_frame']:.2f}"
        rate = "—" if run["changes_per_second"] is None else f"{run['changes_per_second']:,.0f}"
        lines.append(
            f"| {run['round']} | {run['pattern']} | {run['changes']:,} | {seconds} | {rate} "
            f"| {run['trigger_cpu_ms_per_change']:.2f} | {_p(run['publish_ms'], 'p50', 'p99')} "
            f"| {_p(run['latency_ms'], 'p50', 'p99')} | {run['lost']} / {run['duplicates']} |"
        )
    lines += ["", "| run | shop, changes/s | textbook, changes/s | shop / textbook |", "|---|---|---|---|"]
    for name, figures in (("this run", report), ("the run before", previous)):
        if figures is not None:
            lines.append(f"| {name}: {figures['started']} (code {figures.get('code', '?')}) "
                         f"{_producer_ranges(figures['producer']['summary'])} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _producer_ranges(summary: dict) -> str:
    def span(figures: dict | None, form: str) -> str:
        return "—" if figures is None else f"{figures['min']:{form}}–{figures['max']:{form}}"

    ratio = summary.get("shop_over_textbook")
    return f"| {span(summary['shop'], ',.0f')} | {span(summary['textbook'], ',.0f')} | {span(ratio, '.2f')}×"
