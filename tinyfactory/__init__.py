"""The tiny-model factory: pretrains the small models that ship with the package on the embedded world.

It depends on the harness like any client (the Janus and Emu3 training hooks, the world library, the tasks'
world builders and scoring for its held-out check) and nothing in the harness, the tasks or the trainer imports it.
Its output, the bundled weights, lives where the package loads it from (harness/models/tiny_janus/, tiny_emu3/).

    python -m tinyfactory.pretrain [--arch emu3]   the pipeline (data.py, workers.py, lm.py, steps.py; build.py and
                                        emu3_build.py: config, tokenizer and processor of each architecture;
                                        emu3_parts.py: what Emu3 does differently)
    python -m tinyfactory.heldout       the held-out check of the shipped model on world data
"""
