"""The progress display: round r of N, run i of n, ETA; a bar on a terminal, one line per round otherwise."""

from __future__ import annotations

import io

from fedray.progress import Progress, duration, round_line


def record(rnd: int, stage: int = 1, method: str = "lw", round_s: float = 2.0, **extra) -> dict:
    return {"method": method, "stage": stage, "round": rnd, "train/loss": 3.25, "eval/i2t_r1": 0.125,
            "eval/t2i_r1": 0.25, "time/round_s": round_s, "time/elapsed_s": 99.0, **extra}


class Clock:
    """A clock the test moves: no test waits on real time."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_say_round_of_total_run_of_runs_seconds_since_the_command_started_and_eta():
    out, clock = io.StringIO(), Clock()
    display = Progress(out, tty=False, start=90.0, clock=clock)  # the command started 10 s ago

    display.begin("lw", total=4, index=2, count=3)
    clock.now = 110.0
    display.record(record(1, round_s=2.0))  # first round: its own training time, not the start-up, sets the pace
    clock.now = 114.0
    display.record(record(2, stage=2))  # 4 s after the first

    lines = out.getvalue().splitlines()
    assert lines[0] == "[lw 2/3] stage 1 round   1/4 | loss 3.2500 | i2t R@1 0.125 t2i R@1 0.250 | 20.0s | ETA 6s"
    assert lines[1] == "[lw 2/3] stage 2 round   2/4 | loss 3.2500 | i2t R@1 0.125 t2i R@1 0.250 | 24.0s | ETA 6s"


def test_the_last_round_has_no_eta_and_a_resumed_run_counts_from_where_it_restarted():
    out, clock = io.StringIO(), Clock()
    display = Progress(out, tty=False, start=100.0, clock=clock)

    display.begin("prog", total=10)
    clock.now = 130.0
    display.record(record(8, method="prog", round_s=3.0))  # resumed after round 7
    clock.now = 133.0
    display.record(record(9, method="prog"))
    clock.now = 136.0
    display.record(record(10, method="prog"))

    lines = out.getvalue().splitlines()
    assert [line.split(" | ")[0] for line in lines] == [
        "[prog] stage 1 round   8/10", "[prog] stage 1 round   9/10", "[prog] stage 1 round  10/10"]
    assert lines[0].endswith("30.0s | ETA 6s") and lines[1].endswith("ETA 3s") and lines[2].endswith("36.0s")


def test_a_terminal_gets_a_bar_with_the_horizon_and_notes_above_it():
    out, clock = io.StringIO(), Clock()
    display = Progress(out, tty=True, clock=clock)

    display.begin("fedmml", total=24, index=1, count=3)
    clock.now = 105.0
    display.record(record(3, method="fedmml", round_s=5.0))
    display.note("a warning")
    display.close()

    text = out.getvalue()
    assert "[fedmml 1/3] stage 1 3/24" in text
    assert "loss 3.2500 | i2t R@1 0.125 t2i R@1 0.250 | ETA 1m45s" in text  # 21 rounds left x 5 s
    assert "a warning\n" in text
    assert "round   3" not in text  # the per-round line format is for logs, not terminals


def test_generic_steps_and_status_lines():
    out, clock = io.StringIO(), Clock()
    display = Progress(out, tty=False, start=100.0, clock=clock)

    display.begin("resources", total=5, unit="stage")
    clock.now = 112.0
    display.step("fedmml stage 1: step 1 GFLOPs", 1)
    display.status("waiting for trials")

    assert out.getvalue().splitlines() == ["[resources] 1/5 fedmml stage 1: step 1 GFLOPs | 12.0s | ETA 48s",
                                           "[resources] waiting for trials | 12.0s"]


def test_concurrent_steps_divide_the_time_left():
    out, clock = io.StringIO(), Clock()
    display = Progress(out, tty=False, start=100.0, clock=clock)

    display.begin("sweep", total=5, unit="trial", parallel=2)
    clock.now = 160.0
    display.step("trial a finished", 1)

    assert out.getvalue().endswith("| ETA 2m00s\n")  # 4 trials of 60 s left, two at a time


def test_round_line_defaults_to_the_runs_clock_and_shows_faults():
    line = round_line(record(5, **{"fault/client_failures": 1, "fault/retries": 1}))

    assert line == ("[lw] stage 1 round   5 | loss 3.2500 | i2t R@1 0.125 t2i R@1 0.250 | faults: 1 lost, 0 dropped, "
                    "1 retries | 99.0s")


def test_durations_read_short():
    assert [duration(s) for s in (0.4, 42, 185, 3725)] == ["0s", "42s", "3m05s", "1h02m"]
