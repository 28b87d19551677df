import sys

from unigame.cli import main

sys.exit(main())
