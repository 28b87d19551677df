"""AdVQA task (Human-Adversarial VQA, Sheng et al. 2021), scored with the VQA accuracy of tasks.vqav2."""
