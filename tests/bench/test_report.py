"""The results table says under what conditions the latency and the scale-out were measured."""

from bench.handshakes import _summary
from bench.report import _triggers, acks_markdown, handshakes_markdown, scale_out_markdown, scaling_markdown
from bench.scenarios import loop_stalls

INF = float("inf")


def test_the_latency_cell_names_the_triggers_priority_and_how_long_the_web_process_waited_for_a_core():
    latency = {
        "trigger_processes": 2,
        "trigger_niceness": 10,
        "trigger_cpu_ms_per_change": 4.62,
        "machine_cpu_busy": 0.74,
        "server_cpu_wait_share": [0.11, None, 0.08],
    }
    assert _triggers(latency) == (
        "2 triggers at nice 10, 4.6 ms CPU/change, machine 74% busy, web waiting for a core 11%"
    )


def test_results_written_before_those_figures_were_recorded_still_read():
    latency = {"trigger_processes": 2, "trigger_cpu_ms_per_change": 4.62, "machine_cpu_busy": 0.74}
    assert _triggers(latency) == "2 triggers, 4.6 ms CPU/change, machine 74% busy"
    assert _triggers({"trigger_cpu_ms_per_change": 9.6, "machine_cpu_busy": None}) == (
        "1 trigger, 9.6 ms CPU/change, machine — busy"
    )


def test_the_latency_cell_counts_the_web_processes_loop_stalls_over_30_ms_and_bounds_the_worst():
    latency = {
        "trigger_processes": 2,
        "trigger_cpu_ms_per_change": 4.62,
        "machine_cpu_busy": 0.74,
        "server_loop_stalls": [
            {"probes": 2000, "over_30ms": 3, "worst_ms_over": 100.0, "worst_ms_at_most": 250.0},
            None,  # uvicorn: no probe
            {"probes": 2000, "over_30ms": 1, "worst_ms_over": 30.0, "worst_ms_at_most": 50.0},
        ],
    }
    assert _triggers(latency) == (
        "2 triggers, 4.6 ms CPU/change, machine 74% busy, web loop stalls over 30 ms: 4 (worst 100–250 ms)"
    )


def test_loop_stalls_are_the_probes_of_the_run_over_30_ms_and_the_worst_ones_bucket():
    before = {0.01: 90.0, 0.03: 98.0, 0.1: 100.0, 0.25: 100.0, INF: 100.0}
    after = {0.01: 180.0, 0.03: 195.0, 0.1: 198.0, 0.25: 199.0, INF: 199.0}

    assert loop_stalls(before, after) == {
        "probes": 99,
        "over_30ms": 2,
        "worst_ms_over": 100.0,
        "worst_ms_at_most": 250.0,
    }
    assert loop_stalls(None, after) is None  # a server without the probe


def _result(processes: int, handshakes_per_second: float, machine_cpu_busy=None, layer="pubsub") -> dict:
    storm = {"handshakes_per_second": handshakes_per_second}
    if machine_cpu_busy is not None:
        storm["machine_cpu_busy"] = machine_cpu_busy
    return {"server": "daphne", "layer": layer, "processes": processes, "storm": storm}


def test_scale_out_is_two_processes_against_one_and_the_most_the_machine_left_room_for():
    results = [_result(1, 302.0, 0.67), _result(1, 296.0, 0.68, layer="core"), _result(2, 476.0, 0.97)]
    assert scale_out_markdown(results) == (
        "Scale-out (daphne + pubsub): two processes took 1.58× the handshakes per second of one (476 vs 302)."
        " Their storm kept the machine 97% busy: with every core busy, at the same CPU per handshake, about 1.62×."
    )


def test_scale_out_without_a_busy_figure_or_without_a_two_process_run():
    assert scale_out_markdown([_result(1, 200.0), _result(2, 300.0)]) == (
        "Scale-out (daphne + pubsub): two processes took 1.50× the handshakes per second of one (300 vs 200)."
    )
    assert scale_out_markdown([_result(1, 200.0, 0.5)]) is None


def test_the_receipts_line_gives_server_cpu_per_notification_with_and_without_acks_and_the_difference():
    acks = {
        "plain_server_cpu_ms_per_notification": 0.5,
        "acked_server_cpu_ms_per_notification": 0.54,
        "overhead": 0.08,
        "rounds": 2,
        "seconds": 20.0,
        "rate": 200.0,
        "clients": 10_000,
        "acks_sent": 8000,
        "recorded_delivered": 8000,
        "received_with_acks": 8000,
    }
    assert acks_markdown(acks) == (
        "Delivery receipts (the first configuration): with every client acknowledging each notification, the web"
        " server spent 0.540 ms of CPU per notification, against 0.500 ms without (+8.0%); 2 round(s) of 20 s at"
        " 200/s without then with acks, 10,000 sockets, 8,000 acks, 8,000 of 8,000 notifications recorded delivered."
    )
    assert acks_markdown(None) is None


def test_the_handshakes_section_has_a_row_per_storm_then_each_paths_totals_and_the_gain():
    def storm(round_number, path, seconds, cpu_ms):
        return {"round": round_number, "path": path, "clients": 100, "connected": 100, "seconds": seconds,
                "handshakes_per_second": 100 / seconds, "server_cpu_ms_per_handshake": cpu_ms,
                "machine_cpu_busy": 0.5, "failures": {}}  # fmt: skip

    storms = [storm(1, "cookie", 1.0, 3.0), storm(1, "ticket", 0.5, 1.5), storm(2, "cookie", 1.0, 3.0),
              storm(2, "ticket", 0.5, 1.5)]  # fmt: skip
    report = {"started": "2026-12-07 23:00 UTC", "minutes": 1.0, "command": "make bench",
              "machine": {"cores": 2, "cpu": "test", "python": "3.11"},
              "handshakes": {"sockets": 100, "rounds": 2, "storms": storms, "summary": _summary(storms)}}  # fmt: skip
    text = handshakes_markdown(report)
    assert text.count("| cookie |") == 2 and text.count("| ticket |") == 2
    assert "| all | **ticket** | 200 | **200** | **1.50 ms** |" in text
    assert "cookie alone: **2.00×** the handshakes per second and **2.00×** as many handshakes per second" in text


def _stage(sockets: int, cpu_ms: float, kb: float, p99: float, late: int) -> dict:
    return {
        "sockets": sockets,
        "open": sockets,
        "storm": {"handshakes_per_second": 300.0, "server_cpu_ms_per_handshake": cpu_ms},
        "kb_per_socket": kb,
        "latency": {
            "latency_ms": {"p50": 1.0, "p99": p99, "max": 50.0},
            "late": late,
            "received": 2000,
            "lost": 0,
            "server_cpu_wait_share": [0.03],
            "machine_cpu_busy": 0.5,
        },  # fmt: skip
    }


def test_the_scaling_table_has_a_row_per_server_and_socket_count_and_says_which_server_died():
    report = {
        "started": "2026-12-08 00:00 UTC", "minutes": 9.5, "command": "make bench", "arguments": {"rate": 200},
        "machine": {"cores": 2, "cpu": "AMD EPYC", "python": "3.11.7"},
        "scaling": [
            {"server": "daphne", "stages": [_stage(1000, 3.0, 40.1, 9.9, 0), _stage(5000, 3.1, 39.8, 14.2, 3)]},
            {"server": "granian", "stages": [_stage(1000, 2.0, 30.0, 8.0, 1)], "error": "granian-1 exited with -6"},
        ],
    }  # fmt: skip
    rows = [line for line in scaling_markdown(report).splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[1:] == [
        "| daphne | 1,000 | 1,000 | 300 (3.00 ms) | 40.1 | 1.0 / 9.9 / 50.0 | 0 of 2,000 | 0 | 3% | 50% |",
        "| daphne | 5,000 | 5,000 | 300 (3.10 ms) | 39.8 | 1.0 / 14.2 / 50.0 | 3 of 2,000 | 0 | 3% | 50% |",
        "| granian | 1,000 | 1,000 | 300 (2.00 ms) | 30.0 | 1.0 / 8.0 / 50.0 | 1 of 2,000 | 0 | 3% | 50% |",
        "| granian | failed: granian-1 exited with -6 |||||||||",
    ]
