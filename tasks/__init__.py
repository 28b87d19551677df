"""Benchmark tasks: one package per benchmark, registered here lazily (importing this imports no task code)."""
from harness.registry import TASKS

#: suite name -> task names
SUITES: dict[str, list[str]] = {}

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

SUITES["understanding"] = ["vqav2_val", "mmmu_val", "pope", "mmbench_en_dev"]
SUITES["robustness"] = ["naturalbench", "advqa_val"]

# --- generation and consistency: generated images scored by detectors, judges and embedding backbones ----------
TASKS.add("geneval", "tasks.geneval.task:GenEval", "GenEval: mean of six tag accuracies over 4 images per prompt "
          "(djghosh13/geneval metadata)")
TASKS.add("wise", "tasks.wise.task:WISE", "WISE: WiScore with category weights, legacy GPT-4o judge "
          "(Yuwei-Niu/WISE); profiles verified, lmms")
TASKS.add("unified_bench", "tasks.unified_bench.task:UnifiedBench", "UnifiedBench Protocol-1 round trip, "
          "CLIP/SigLIP/DINOv2/DreamSim, 0-100 (UAE reference images)")
TASKS.add("unified_bench_uae", "tasks.unified_bench.task:UnifiedBenchUAE", "UnifiedBench Protocol-1 round trip, "
          "UAE's CLIP/LongCLIP/DINOv2/DINOv3, 0-100 (UAE reference images)")

SUITES["generation"] = ["geneval", "wise"]
SUITES["consistency"] = ["unified_bench", "wise"]
SUITES["unigame_paper"] = ["vqav2_val", "mmmu_val", "mmbench_en_dev", "pope", "geneval", "wise", "unified_bench",
                           "naturalbench", "advqa_val"]
SUITES["all"] = list(SUITES["unigame_paper"])

#: cross-task metrics of one run (computed by harness/derived.py): inputs are (task, metric[, scale]) pairs whose
#: stored value times scale is passed to fn in order. UnifiedBench is stored on 0-100 and WISE as a fraction, which
#: is what consistency_score takes; the understanding accuracies are stored as fractions, scaled to percent here.
DERIVED: list[dict] = [
    {"name": "consistency_score", "inputs": [("unified_bench", "overall"), ("wise", "overall")],
     "fn": "tasks.consistency:consistency_score",
     "description": "UniGame Consistency Score = 0.6 x UnifiedBench + 0.4 x (WISE x 100), 0-100"},
    {"name": "consistency_score_uae", "inputs": [("unified_bench_uae", "overall"), ("wise", "overall")],
     "fn": "tasks.consistency:consistency_score",
     "description": "Consistency Score with UAE's UnifiedBench backbones (CLIP/LongCLIP/DINOv2/DINOv3), 0-100"},
    {"name": "understanding_overall", "inputs": [("vqav2_val", "accuracy", 100), ("mmmu_val", "accuracy", 100),
                                                 ("mmbench_en_dev", "circular_accuracy", 100), ("pope", "f1", 100)],
     "fn": "tasks.consistency:understanding_overall",
     "description": "UniGame understanding Overall: mean of VQAv2, MMMU, MMBench and POPE in percent"},
]
