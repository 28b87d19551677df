"""Progress in a batch job's log (no terminal): plain lines, never a bar's carriage returns."""
import io

from tqdm.auto import tqdm

from conftest import DOUBLES, run_cli
from harness.progress import LineProgress, stage_progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_run_logged_to_a_file_prints_one_plain_line_per_stage(tmp_path):
    proc = run_cli("run", "--include", DOUBLES, "--model", "double-model", "--tasks", "double_sum,double_roundtrip",
                   "--batch-size", "4", "--output", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr
    lines = proc.stderr.splitlines()
    understand = [x for x in lines if x.startswith("model.understand [double_roundtrip/describe, double_sum/answer]")]
    assert len(understand) == 1 and ": 54/54 (100%), " in understand[0]
    assert understand[0].endswith(", cached=0, failed=0")
    rerun = run_cli("run", "--include", DOUBLES, "--model", "double-model", "--tasks", "double_sum",
                    "--output", tmp_path / "out")
    assert ": 24/24 (100%), 0.0 req/s" in rerun.stderr and "cached=24, failed=0" in rerun.stderr


def test_lines_come_at_most_once_per_interval_and_once_at_the_end():
    out = io.StringIO()
    slow = LineProgress(10, 0, "model.generate [geneval/generate]", {"failed": 0}, out, interval=3600)
    for _ in range(10):
        slow.update(1)
    slow.close()
    assert out.getvalue().count("\n") == 1 and "10/10 (100%)" in out.getvalue()
    out = io.StringIO()
    every = LineProgress(4, 1, "model.understand [pope/answer]", {"cached": 1}, out, interval=0)
    every.update(1)
    every.set_postfix(cached=1, failed=1)
    every.update(2)
    every.close()                          # the same line as the last update: not printed twice
    printed = out.getvalue().splitlines()
    assert [p.split(":", 1)[1].split(",")[0] for p in printed] == [" 2/4 (50%)", " 4/4 (100%)"]
    assert printed[-1].endswith("cached=1, failed=1") and ", eta " in printed[0]


def test_a_terminal_gets_a_bar_and_a_disabled_progress_prints_nothing():
    assert isinstance(stage_progress(5, 0, "x", {}, True, file=_Terminal()), tqdm)
    quiet = io.StringIO()
    bar = stage_progress(5, 0, "x", {}, False, file=quiet)
    bar.update(5)
    bar.close()
    assert quiet.getvalue() == ""


def test_the_interval_between_lines_is_set_from_the_environment(tmp_path):
    # the double model sleeps a little per batch: with an interval of 0 every stored batch of 4 prints a line
    args = ["run", "--include", DOUBLES, "--model", "double-model", "--model-args", '{"delay": 0.02}',
            "--tasks", "double_sum", "--batch-size", "4", "--output", tmp_path / "out"]
    proc = run_cli(*args, env={"HARNESS_PROGRESS_INTERVAL": "0"})
    assert proc.returncode == 0, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.startswith("model.understand [double_sum/answer]: ")]
    assert [x.split(": ", 1)[1].split(" ")[0] for x in lines] == [f"{n}/24" for n in range(4, 25, 4)]
    for bad in ("soon", "-5", "nan"):
        proc = run_cli(*args, "--overwrite", env={"HARNESS_PROGRESS_INTERVAL": bad})
        assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
            f"error: HARNESS_PROGRESS_INTERVAL={bad}: give the seconds between two progress lines in a log file, a "
            "number of at least 0 (default 30), or unset it"], proc.stderr
