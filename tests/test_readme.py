"""The README's examples work as written."""
import json
import re

from PIL import Image

from conftest import DOUBLES, ROOT, run_cli


def _python_block(after_heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split(after_heading, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_adding_a_task_example_runs(tmp_path):
    (tmp_path / "my_task.py").write_text(_python_block("## Adding a task"))
    rows = []
    for i in range(3):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(tmp_path / f"{i}.png")
        rows.append({"id": i, "question": f"sum {i} 1", "answer": str(i + 1), "image": f"{i}.png"})
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = run_cli("run", "--include", tmp_path / "my_task.py", "--include", DOUBLES, "--model", "double-model",
                   "--tasks", "my_task", "--data", tmp_path / "rows.jsonl", "--output", tmp_path / "out",
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"my_task\s+accuracy \*\s+\d", proc.stdout)


def test_every_test_the_reliability_table_names_exists():
    """The README's reliability table says which test keeps each row true: each one must exist."""
    import ast

    text = (ROOT / "README.md").read_text()
    table = text.split("<!-- reliability-table:start -->", 1)[1].split("<!-- reliability-table:end -->", 1)[0]
    named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", table)
    assert len(named) >= 15
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| case")]
    assert all("::" in row for row in rows)                               # every row names its test
    for file, name in named:
        tree = ast.parse((ROOT / "tests" / file).read_text())
        assert name in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}, f"{file}::{name}"
