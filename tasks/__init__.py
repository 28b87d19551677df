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
