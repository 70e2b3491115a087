"""The results table says under what conditions the latency was measured."""

from bench.report import _triggers


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
