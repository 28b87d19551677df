"""Training hooks on a random-config Janus: layout matches inference, gradients reach both interfaces."""
import pytest

torch = pytest.importorskip("torch")

from PIL import Image as PILImage  # noqa: E402

from harness.models import resolve_model  # noqa: E402
from harness.models.hooks import TrainingHooks  # noqa: E402
from harness.models.janus_decode import (decode_text, generators_for, sample_image_codes,  # noqa: E402
                                         unconditional_ids)
from tinyfactory.build import save_random_model  # noqa: E402


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("janus") / "tiny-random"
    save_random_model(path, seed=1)
    return resolve_model(str(path))


@pytest.fixture(scope="module")
def hooks(adapter):
    return adapter.training_hooks()


def _pil(rgb, where=(4, 4, 20, 20)):
    im = PILImage.new("RGB", (32, 32), (225, 225, 225))
    im.paste(rgb, where)
    return im


def _batch(hooks):
    return hooks.understanding_batch(
        [_pil((220, 40, 40)), [_pil((30, 100, 220)), _pil((40, 160, 60), (10, 10, 30, 30))], []],
        ["What color is the circle?", "How many?", "Answer A or B."], ["red", "two blue", "A"])


def test_hooks_satisfy_the_protocol(hooks):
    assert isinstance(hooks, TrainingHooks)


def test_understanding_batch_labels_only_the_answer(hooks):
    b = _batch(hooks)
    tok = hooks.tokenizer
    assert b.images_per_sample == [1, 2, 0] and b.pixel_values.shape[0] == 3
    for row, n_answer in zip(range(3), (1, 2, 1)):
        labelled = b.labels[row][b.labels[row] != -100].tolist()
        assert len(labelled) == n_answer + 1 and labelled[-1] == tok.eos_token_id
    n_slots = int((b.input_ids == hooks.model.config.image_token_id).sum())
    assert n_slots == 3 * hooks.model.config.vision_config.num_image_tokens


def test_teacher_forced_logits_agree_with_inference(adapter, hooks):
    """The first answer token predicted by answer_logits is the one `understand` decodes greedily."""
    m, processor = adapter.load()
    b = hooks.understanding_batch([_pil((220, 40, 40))], ["What color is the circle?"], ["red"])
    with torch.no_grad():
        logits = hooks.answer_logits(b)
        first_answer = int((b.labels[0] != -100).nonzero()[0])
        predicted = int(logits[0, first_answer - 1].argmax())
        n_prompt = first_answer
        greedy = decode_text(m, b.input_ids[:, :n_prompt], b.attention_mask[:, :n_prompt],
                             hooks.visual_tokens(b.pixel_values), max_new_tokens=1, temperature=0,
                             generators=generators_for([0], "cpu"), eos_id=-1)
    assert greedy[0][0] == predicted


def test_per_sample_answer_loss_and_gradient_at_the_visual_interface(hooks):
    b = _batch(hooks)
    with torch.no_grad():
        visual = hooks.visual_tokens(b.pixel_values)
    delta = torch.zeros_like(visual, requires_grad=True)
    loss = hooks.answer_loss(b, visual + delta)
    assert loss.shape == (3,) and torch.isfinite(loss).all()
    loss.sum().backward()
    assert delta.grad is not None and delta.grad.abs().sum() > 0
    with torch.no_grad():   # a sample's loss does not depend on its batch neighbours
        alone = hooks.answer_loss(hooks.understanding_batch([_pil((220, 40, 40))], ["What color is the circle?"],
                                                            ["red"]))
    assert torch.allclose(alone[0], loss[0].detach(), atol=1e-4)


def test_vq_round_trip_matches_the_inference_decoder(hooks):
    pixels = hooks.images_to_pixels([_pil((220, 40, 40)), _pil((30, 100, 220))])
    assert pixels.shape == (2, 3, 32, 32) and pixels.min() >= -1 and pixels.max() <= 1
    with torch.no_grad():
        codes, z = hooks.vq_encode(pixels)
        emb = hooks.code_embeddings(codes)
        assert codes.shape == (2, 16) and z.shape == emb.shape == (2, 16, 8)
        assert torch.allclose(emb.norm(dim=-1), torch.ones(2, 16), atol=1e-5)
        ours = hooks.decode(emb)
        theirs = hooks.model.model.vqmodel.decode(codes)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert torch.allclose(hooks.generation_embeddings(codes),
                          hooks.model.prepare_embeddings_for_image_generation(codes))


@pytest.mark.parametrize("quantize", ["none", "soft", "straight_through"])
def test_gradient_flows_through_decode_and_reencode(hooks, quantize):
    """delta on the code embeddings -> VQ decoder -> pixels -> understanding encoder -> LM -> per-sample CE."""
    pixels = hooks.images_to_pixels([_pil((220, 40, 40)), _pil((40, 160, 60))])
    with torch.no_grad():
        codes, _ = hooks.vq_encode(pixels)
        z = hooks.code_embeddings(codes)
    delta = torch.zeros_like(z, requires_grad=True)
    decoded = hooks.decode(z + delta, quantize=quantize)
    b = hooks.understanding_batch([_pil((0, 0, 0)), _pil((0, 0, 0))], ["What color?", "What color?"],
                                  ["red", "green"])
    loss = hooks.answer_loss(b, hooks.reencode(decoded))
    assert loss.shape == (2,)
    loss.sum().backward()
    assert delta.grad is not None and delta.grad.abs().sum() > 0


def test_lm_space_perturbation_maps_back_to_code_embeddings(hooks):
    codes = torch.randint(0, 64, (1, 16))
    lm = hooks.generation_embeddings(codes).detach()
    delta = torch.zeros_like(lm, requires_grad=True)
    back = hooks.lm_to_code_embeddings(lm + delta, temperature=0.01)
    assert back.shape == (1, 16, 8)
    hooks.decode(back).mean().backward()
    assert delta.grad.abs().sum() > 0
    weights = torch.softmax(torch.randn(1, 16, 64), -1)
    assert hooks.generation_embeddings(weights).shape == lm.shape


def test_generation_loss_is_teacher_forced_like_inference(adapter, hooks):
    m, processor = adapter.load()
    tok = processor.tokenizer
    prompts = ["a red circle", "two blue squares and a green triangle"]
    b0 = hooks.generation_batch(prompts, torch.zeros(2, 16, dtype=torch.long))
    with torch.no_grad():
        codes = sample_image_codes(m, b0.input_ids, b0.attention_mask, guidance=[1.0, 1.0], temperature=[0, 0],
                                   generators=generators_for([0, 0], "cpu"), bos_id=tok.bos_token_id,
                                   boi_id=tok.convert_tokens_to_ids(processor.image_start_token),
                                   pad_id=tok.pad_token_id)
    b = hooks.generation_batch(prompts, codes)
    loss = hooks.generation_loss(b)
    assert loss.shape == (2,)
    loss.sum().backward()
    grads = [p.grad for p in hooks.model.model.generation_head.parameters()]
    assert all(g is not None for g in grads)
    hooks.model.zero_grad(set_to_none=True)
    with torch.no_grad():      # greedy codes are the argmax of the teacher-forced logits at every step
        text = m.get_input_embeddings()(b.input_ids)
        embeds = torch.cat([text, m.prepare_embeddings_for_image_generation(codes[:, :-1])], 1)
        mask = torch.cat([b.attention_mask, torch.ones(2, 15, dtype=torch.long)], 1)
        from harness.models.janus_decode import positions
        hidden = m.model.language_model(inputs_embeds=embeds, attention_mask=mask,
                                        position_ids=positions(mask)).last_hidden_state
        pred = m.model.generation_head(hidden[:, b.input_ids.shape[1] - 1:]).argmax(-1)
    assert torch.equal(pred, codes)


def test_cfg_dropout_builds_the_inference_null_prompt(hooks):
    tok = hooks.tokenizer
    codes = torch.zeros(2, 16, dtype=torch.long)
    kept = hooks.generation_batch(["a red circle", "a red circle"], codes)
    dropped = hooks.generation_batch(["a red circle", "a red circle"], codes, drop_condition=[False, True])
    assert torch.equal(dropped.input_ids[0], kept.input_ids[0])
    boi = tok.convert_tokens_to_ids(hooks.processor.image_start_token)
    null = unconditional_ids(kept.input_ids[1:], tok.bos_token_id, boi, tok.pad_token_id)
    assert torch.equal(dropped.input_ids[1:], null) and torch.equal(dropped.attention_mask, kept.attention_mask)


def test_lora_targets_and_frozen_modules(hooks):
    from peft import LoraConfig, get_peft_model

    targets = hooks.lora_target_modules()
    n_layers = hooks.model.config.text_config.num_hidden_layers
    assert len(targets) == 7 * n_layers and all(t.startswith("model.language_model.layers.") for t in targets)
    names = dict(hooks.model.named_modules())
    assert all(f in names for f in hooks.frozen_modules())
    import copy
    peft_model = get_peft_model(copy.deepcopy(hooks.model), LoraConfig(r=2, target_modules=hooks.lora_target_regex()))
    lora = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert lora and all("language_model" in n and "lora_" in n for n in lora)
    assert len(lora) == 2 * len(targets)
