"""Benchmark tasks: one package per benchmark, registered here lazily (importing this imports no task code), with
the suites and cross-task aggregates built from them. The engine reaches all of it through harness.registry."""
from harness.aggregates import Aggregate, Input
from harness.registry import AGGREGATES, SUITES, TASKS

# --- understanding: answers scored exactly as each benchmark's own code scores them ----------------------------
TASKS.add("vqav2_val", "tasks.vqav2.task:VQAv2Val", "VQAv2 validation: VQA accuracy (lmms-lab/VQAv2)")
TASKS.add("vqav2_testdev", "tasks.vqav2.task:VQAv2TestDev",
          "VQAv2 test-dev: EvalAI submission file for every test2015 question (lmms-lab/VQAv2)")
TASKS.add("advqa_val", "tasks.advqa.task:AdVQAVal", "AdVQA val: VQA accuracy (HuggingFaceM4/AdVQA)")
TASKS.add("mmmu_val", "tasks.mmmu.task:MMMUVal", "MMMU validation: accuracy, per discipline and subject "
          "(lmms-lab/MMMU)")
TASKS.add("mmmu_dev", "tasks.mmmu.task:MMMUDev", "MMMU dev: accuracy, per discipline and subject (lmms-lab/MMMU)")
TASKS.add("pope", "tasks.pope.task:POPE", "POPE: mean F1 over adversarial/popular/random (lmms-lab/POPE)")
TASKS.add("mmbench_en_dev", "tasks.mmbench.task:MMBenchEnDev", "MMBench-EN dev: CircularEval accuracy "
          "(lmms-lab/MMBench)")
TASKS.add("mmbench_en_test", "tasks.mmbench.task:MMBenchEnTest", "MMBench-EN test: predictions TSV for the "
          "MMBench server (lmms-lab/MMBench)")
TASKS.add("naturalbench", "tasks.naturalbench.task:NaturalBench", "NaturalBench: group accuracy G-Acc "
          "(BaiqiL/NaturalBench)")

SUITES.put("understanding", ("vqav2_val", "mmmu_val", "pope", "mmbench_en_dev"),
           "UniGame's understanding tasks; understanding Overall is their plain mean")
SUITES.put("robustness", ("naturalbench", "advqa_val"), "natural and human-adversarial questions")

# --- generation and consistency: generated images scored by detectors, judges and embedding backbones ----------
TASKS.add("geneval", "tasks.geneval.task:GenEval", "GenEval: mean of six tag accuracies over 4 images per prompt "
          "(djghosh13/geneval metadata)")
TASKS.add("wise", "tasks.wise.task:WISE", "WISE: WiScore with category weights, legacy GPT-4o judge "
          "(Yuwei-Niu/WISE); profiles verified, lmms")
TASKS.add("unified_bench", "tasks.unified_bench.task:UnifiedBench", "UnifiedBench Protocol-1 round trip, "
          "CLIP/SigLIP/DINOv2/DreamSim, 0-100 (UAE reference images)")
TASKS.add("unified_bench_uae", "tasks.unified_bench.task:UnifiedBenchUAE", "UnifiedBench Protocol-1 round trip, "
          "UAE's CLIP/LongCLIP/DINOv2/DINOv3, 0-100 (UAE reference images)")

UNIGAME_PAPER = ("vqav2_val", "mmmu_val", "mmbench_en_dev", "pope", "geneval", "wise", "unified_bench",
                 "naturalbench", "advqa_val")
SUITES.put("generation", ("geneval", "wise"), "text-to-image alignment and world knowledge")
SUITES.put("consistency", ("unified_bench", "wise"), "the Consistency Score's inputs")
SUITES.put("unigame_paper", UNIGAME_PAPER, "every task of the UniGame paper")
SUITES.put("all", UNIGAME_PAPER, "the same as unigame_paper (the default of `run`)")

# --- aggregates over several tasks: UniGame's formulas (tasks/consistency.py), in the units each takes ----------
# the Consistency Score's WISE is the WiScore (legacy rubric, also lmms-eval's), not WISE-Verified's binary rate
WISCORE = ("legacy", "lmms")
for _aggregate in (
    Aggregate("consistency_score", "tasks.consistency:consistency_score",
              (Input("unified_bench", "unified_bench", "overall"),
               Input("wise", "wise", "overall", "fraction", WISCORE)),
              "UniGame Consistency Score = 0.6 x UnifiedBench + 0.4 x (WISE x 100), 0-100"),
    Aggregate("consistency_score_uae", "tasks.consistency:consistency_score",
              (Input("unified_bench", "unified_bench_uae", "overall"),
               Input("wise", "wise", "overall", "fraction", WISCORE)),
              "Consistency Score with UAE's UnifiedBench backbones (CLIP/LongCLIP/DINOv2/DINOv3), 0-100"),
    Aggregate("understanding_overall", "tasks.consistency:understanding_overall",
              (Input("vqav2", "vqav2_val", "accuracy"), Input("mmmu", "mmmu_val", "accuracy"),
               Input("mmbench", "mmbench_en_dev", "circular_accuracy"), Input("pope", "pope", "f1")),
              "UniGame understanding Overall: mean of VQAv2, MMMU, MMBench and POPE in percent"),
):
    AGGREGATES.put(_aggregate.name, _aggregate, _aggregate.description)
