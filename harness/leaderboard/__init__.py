"""Leaderboards regenerated from the results store: a pure function of stored results and leaderboards/*.yaml.

    build_all(results_dir, out_dir=None, names=None) -> list[Path]

writes <out>/<board>.md, .csv and .json for each board, its plots as <out>/<board>-plotN.svg, and one
self-contained page <out>/index.html holding the boards built. The leaderboards of a results store live in the
store itself, <results>/leaderboards/ (default_out), whichever command builds them: `harness run`, `harness
leaderboard` and `unigame train` all write there unless told otherwise. The same store always gives byte-identical Markdown,
CSV and JSON. It is meant to be called after each run and each training checkpoint's evaluation; `python -m harness
leaderboard` is the command-line form.
"""
from __future__ import annotations

import logging
from pathlib import Path

from harness.errors import HarnessError

log = logging.getLogger(__name__)

PAGE = "index.html"


def default_out(results_dir: str | Path) -> Path:
    """Where the leaderboards of a results store go unless a command is told otherwise."""
    return Path(results_dir) / "leaderboards"


def summary(files: list[Path]) -> str:
    """'12 boards (44 files) in DIR; open DIR/index.html': boards and files counted apart."""
    boards = {f.stem for f in files if f.suffix == ".md"}
    folder = files[0].parent if files else Path(".")
    page = next((f for f in files if f.name == PAGE), None)
    return (f"{len(boards)} board{'s' if len(boards) != 1 else ''} ({len(files)} files) in {folder}"
            + (f"; open {page}" if page else ""))


def build_boards(results_dir: str | Path, names: list[str] | None = None, *, spec_dir: str | Path | None = None,
                 include_reported: bool = False):
    """(boards, warnings): the selected boards (all when names is None) built from the store."""
    from harness.leaderboard.build import build_board
    from harness.leaderboard.reported import load_reported
    from harness.leaderboard.select import scan
    from harness.leaderboard.spec import REPORTED_FILE, default_spec_dir, load_specs
    from harness.registry import unknown_name_message

    spec_dir = Path(spec_dir) if spec_dir is not None else default_spec_dir()
    specs = load_specs(spec_dir)
    for name in names or []:
        if name not in specs:
            raise HarnessError(unknown_name_message("leaderboard", name, specs)
                               + f" (boards: {', '.join(specs)})")
    chosen = [specs[n] for n in (list(dict.fromkeys(names)) if names else specs)]
    runs, warnings = scan(results_dir)
    reported = load_reported(spec_dir / REPORTED_FILE) if include_reported else []
    return [build_board(s, runs, reported, include_reported) for s in chosen], warnings


def write_boards(boards, out_dir: str | Path, page_name: str = PAGE) -> list[Path]:
    from harness.leaderboard.html import page
    from harness.leaderboard.plots import draw
    from harness.leaderboard.render import markdown, to_csv, to_json

    out = Path(out_dir)
    written = []
    drawn = []
    for board in boards:
        for suffix, text in ((".md", markdown(board)), (".csv", to_csv(board)), (".json", to_json(board))):
            written.append(_publish(out / f"{board.spec.name}{suffix}", text))
        plots = draw(board)
        # each plot also as its own file, for embedding in a README or a paper
        for k, (_title, svg) in enumerate(plots, 1):
            written.append(_publish(out / f"{board.spec.name}-plot{k}.svg", svg))
        drawn.append((board, plots))
    written.append(_publish(out / page_name, page(drawn)))
    return written


def _publish(path: Path, text: str) -> Path:
    from harness.store import write_text

    write_text(path, text)
    path.chmod(0o644)       # written through a private temp file; these files are meant to be served and shared
    return path


def build_all(results_dir: str | Path, out_dir: str | Path | None = None, names: list[str] | None = None, *,
              spec_dir: str | Path | None = None, include_reported: bool = False) -> list[Path]:
    """Build the named boards (all when None) from results_dir into out_dir (default: default_out(results_dir));
    return the files written."""
    boards, warnings = build_boards(results_dir, names, spec_dir=spec_dir, include_reported=include_reported)
    for w in warnings:
        log.warning("leaderboard: %s", w)
    return write_boards(boards, out_dir if out_dir is not None else default_out(results_dir))
