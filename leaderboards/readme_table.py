"""Copy the embedded-world post-training table and its plot into README.md, between the world-leaderboard markers
(run after `harness leaderboard --all --out leaderboards/world`, as regenerate_world.sh does)."""
import re
import sys
from pathlib import Path

START, END = "<!-- world-leaderboard:start -->", "<!-- world-leaderboard:end -->"


def main(readme: Path = Path("README.md"), board: Path = Path("leaderboards/world/post_training_world.md")) -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        sys.exit(f"{readme}: the {START} / {END} markers are missing; put them where the table goes")
    table = "\n".join(line for line in board.read_text().splitlines() if line.startswith("|"))
    body = (f"{START}\n{table}\n\n![Method comparison on the embedded world]"
            f"(leaderboards/world/post_training_world-plot2.svg)\n{END}")
    readme.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: body, text, flags=re.S))


if __name__ == "__main__":
    main()
