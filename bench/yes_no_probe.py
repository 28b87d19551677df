"""Where a model's POPE answer lives (a diagnostic, not a test): a linear probe per LM layer, at the position the
first answer token is predicted from.

Trains a logistic regression on the hidden state of the last prompt position (embeddings, then each layer) for
POPE-style questions ("Is there a {colour} {shape} in the image?") on training-stream scenes of 3-4 objects, and
reports its accuracy on the world's held-out POPE questions, next to the model's own AUC (log-likelihood of
"yes" minus "no"). A probe near 50% at every layer means the answer never reaches the answering position: the
failure is in routing, not in the yes/no read-out.

    python bench/yes_no_probe.py [--model tiny-janus] [--train 1500] [--images 40]
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from tinyfactory import data
from harness.world.training_mix import pope_question
from harness.models import resolve_model
from tasks.world import build


def last_prompt_states(hooks, images, questions, batch: int = 32) -> torch.Tensor:
    """[N, layers + 1, hidden] at the last prompt position (the answer " yes" + EOS follows it)."""
    out = []
    answer_len = len(hooks.tokenizer(" yes", add_special_tokens=False)["input_ids"]) + 1
    with torch.no_grad():
        for k in range(0, len(questions), batch):
            qs = [f"{q}\n{data.VQA_SUFFIX}" for q in questions[k:k + batch]]
            b = hooks.understanding_batch(images[k:k + batch], qs, ["yes"] * len(qs))
            layers = hooks._hidden(b, None, all_layers=True)    # the same input layout as answer_loss
            out.append(torch.stack([h[:, -answer_len - 1] for h in layers], 1))
    return torch.cat(out)


def probe_accuracy(x_train, y_train, x_test, y_test, steps: int = 500) -> float:
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-5
    a, b = (x_train - mu) / sd, (x_test - mu) / sd
    w = torch.zeros(a.shape[1], requires_grad=True)
    c = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([w, c], lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        (F.binary_cross_entropy_with_logits(a @ w + c, y_train) + 1e-3 * w.pow(2).sum()).backward()
        opt.step()
    with torch.no_grad():
        return float(((b @ w + c > 0).float() == y_test).float().mean())


def model_auc(hooks, images, questions, answers, batch: int = 32) -> float:
    """AUC of the model's log p(yes) - log p(no) against the true answers."""
    qs = [f"{q}\n{data.VQA_SUFFIX}" for q in questions]
    margins = []
    with torch.no_grad():
        for k in range(0, len(qs), batch):
            ims, chunk = images[k:k + batch], qs[k:k + batch]
            margins.append(hooks.answer_loss(hooks.understanding_batch(ims, chunk, ["no"] * len(chunk)))
                           - hooks.answer_loss(hooks.understanding_batch(ims, chunk, ["yes"] * len(chunk))))
    margin = torch.cat(margins)
    pos = margin[torch.tensor(answers)]
    neg = margin[~torch.tensor(answers)]
    return float((pos[:, None] > neg[None]).float().mean() + 0.5 * (pos[:, None] == neg[None]).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny-janus")
    ap.add_argument("--train", type=int, default=1500, help="training-stream questions for the probe")
    ap.add_argument("--images", type=int, default=40, help="held-out POPE images (18 questions each)")
    a = ap.parse_args()
    torch.manual_seed(0)
    model = resolve_model(a.model)
    model.load()
    hooks = model.training_hooks()
    tr_images, tr_questions, tr_answers = [], [], []
    for i in range(a.train):
        rng = data.stream("yes-no-probe", 0, 0, i)
        scene = data.sample_scene(rng, int(rng.integers(3, 5)), distinct=True)
        q = pope_question(scene, rng)
        tr_images.append(data.render(scene, data.SIZE))
        tr_questions.append(q["question"])
        tr_answers.append(q["answer"] == "yes")
    rows = build("pope", n_images=a.images)
    te_images, te_questions = [r["image"] for r in rows], [r["question"] for r in rows]
    te_answers = [r["answer"] == "yes" for r in rows]
    x_train = last_prompt_states(hooks, tr_images, tr_questions)
    x_test = last_prompt_states(hooks, te_images, te_questions)
    y_train, y_test = torch.tensor(tr_answers).float(), torch.tensor(te_answers).float()
    print(f"{a.model}: held-out POPE (embedded world, {len(rows)} questions), model AUC "
          f"{model_auc(hooks, te_images, te_questions, te_answers):.3f}")
    for layer in range(x_train.shape[1]):
        acc = probe_accuracy(x_train[:, layer], y_train, x_test[:, layer], y_test)
        print(f"  linear probe at the last prompt position, {'embeddings' if layer == 0 else f'layer {layer}'}: "
              f"{100 * acc:.1f}% held-out")


if __name__ == "__main__":
    main()
