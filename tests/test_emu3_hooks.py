"""Training hooks on a random-config Emu3: layout matches inference, the straight-through re-encoding has the
inference value and a gradient, the continuous decoder is Emu3's own, generation is teacher-forced like inference."""
import pytest

torch = pytest.importorskip("torch")

from PIL import Image as PILImage  # noqa: E402

from harness.models import resolve_model  # noqa: E402
from harness.models.emu3_decode import (generation_inputs, generators_for, image_embeddings,  # noqa: E402
                                        sample_image_codes)
from harness.models.hooks import TrainingHooks  # noqa: E402
from tinyfactory.emu3_build import save_random_emu3  # noqa: E402


@pytest.fixture(scope="module", params=[1, 4], ids=["frames1", "frames4"])
def adapter(request, tmp_path_factory):
    """Emu3's VQ model encodes an image as a clip of temporal_downsample_factor frames (4 in the real one)."""
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("emu3") / "tiny-random"
    save_random_emu3(path, seed=1, temporal=request.param)
    return resolve_model(str(path))


@pytest.fixture(scope="module")
def hooks(adapter):
    return adapter.training_hooks()


def _pil(rgb, where=(4, 4, 20, 20), size=(32, 32)):
    im = PILImage.new("RGB", size, (225, 225, 225))
    im.paste(rgb, where)
    return im


def _batch(hooks):
    return hooks.understanding_batch(
        [_pil((220, 40, 40)), [_pil((30, 100, 220)), _pil((40, 160, 60), (10, 10, 30, 30), (48, 24))], []],
        ["What color is the circle?", "How many?", "Answer A or B."], ["red", "two blue", "A"])


def test_hooks_satisfy_the_protocol(hooks):
    assert isinstance(hooks, TrainingHooks)
    assert hooks.DEFAULT_INTERFACE == "code" and hooks.image_size == 32
    assert hooks.token_dim("code") == 4 and hooks.token_dim("lm") == hooks.token_dim("visual") == 64


def test_understanding_batch_labels_only_the_answer_and_squares_every_image(hooks):
    b = _batch(hooks)
    tok = hooks.tokenizer
    assert b.images_per_sample == [1, 2, 0] and tuple(b.pixel_values.shape) == (3, 3, 32, 32)
    for row, n_answer in zip(range(3), (1, 2, 1)):
        labelled = b.labels[row][b.labels[row] != -100].tolist()
        assert len(labelled) == n_answer + 1 and labelled[-1] == tok.eos_token_id
    n_slots = int((b.input_ids == hooks.model.vocabulary_mapping.image_token_id).sum())
    assert n_slots == 3 * 4 * (4 + 1)                    # 4 rows of 4 codes, each row closed by end-of-line


def test_visual_tokens_are_what_inference_reads_and_carry_a_straight_through_gradient(hooks):
    b = _batch(hooks)
    with torch.no_grad():
        ours = hooks.visual_tokens(b.pixel_values)
        theirs = image_embeddings(hooks.model, b.pixel_values, [[32, 32]] * 3)
    assert torch.equal(ours.reshape(-1, ours.shape[-1]), theirs)
    pv = b.pixel_values.clone().requires_grad_(True)
    st = hooks.visual_tokens(pv)
    assert torch.equal(st.detach(), ours)                # the forward value is the hard, inference one
    (st * torch.randn_like(st)).sum().backward()
    assert pv.grad is not None and pv.grad.abs().sum() > 0


def test_teacher_forced_logits_agree_with_inference(adapter, hooks):
    from harness.models.emu3_decode import decode_text

    m, _ = adapter.load()
    b = hooks.understanding_batch([_pil((220, 40, 40))], ["What color is the circle?"], ["red"])
    with torch.no_grad():
        logits = hooks.answer_logits(b)
        first_answer = int((b.labels[0] != -100).nonzero()[0])
        greedy = decode_text(m, b.input_ids[:, :first_answer], b.attention_mask[:, :first_answer],
                             hooks.visual_tokens(b.pixel_values), max_new_tokens=1, temperature=0,
                             generators=generators_for([0], "cpu"), eos_id=-1)
    assert greedy[0][0] == int(logits[0, first_answer - 1].argmax())


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


def test_vq_round_trip_matches_emu3s_own_decoder(hooks):
    pixels = hooks.images_to_pixels([_pil((220, 40, 40)), _pil((30, 100, 220))])
    assert pixels.shape == (2, 3, 32, 32) and pixels.min() >= -1 and pixels.max() <= 1
    with torch.no_grad():
        codes, latents = hooks.vq_encode(pixels)
        emb = hooks.code_embeddings(codes)
        assert codes.shape == (2, 16) and latents.shape == emb.shape == (2, 16, 4)
        vq = hooks.model.model.vqmodel
        pv = hooks.pixels_to_pixel_values(pixels)
        assert torch.equal(codes.view(2, 4, 4), torch.stack(vq.encode(pv, image_sizes=[[32, 32]] * 2).image_tokens))
        ours = hooks.decode(emb)
        theirs = vq.decode(codes.view(2, 4, 4))     # normalised pixels: mean = std = 0.5, so the same as [-1, 1]
    assert torch.allclose(ours, theirs, atol=1e-5)
    table = hooks.model.get_input_embeddings().weight[hooks.model.vocabulary_mapping.img2bpe_mapping_tensor.long()]
    assert torch.equal(hooks.generation_embeddings(codes), table[codes])


@pytest.mark.parametrize("quantize", ["none", "soft", "straight_through"])
def test_gradient_flows_through_decode_and_reencode(hooks, quantize):
    """delta on the code embeddings -> Emu3's VQ decoder -> pixels -> VQ encoder (straight-through) -> LM -> CE."""
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
    assert back.shape == (1, 16, 4)
    hooks.decode(back).mean().backward()
    assert delta.grad.abs().sum() > 0
    weights = torch.softmax(torch.randn(1, 16, 64), -1)
    assert hooks.generation_embeddings(weights).shape == lm.shape


def test_generation_loss_is_teacher_forced_like_inference(adapter, hooks):
    m, processor = adapter.load()
    prompts = ["a red circle", "two blue squares and a green triangle"]
    enc = generation_inputs(processor, prompts, (4, 4))
    with torch.no_grad():
        codes = sample_image_codes(m, enc["input_ids"], enc["attention_mask"], (4, 4), guidance=[1.0, 1.0],
                                   temperature=[0, 0], generators=generators_for([0, 0], "cpu"))
    b = hooks.generation_batch(prompts, codes)
    assert torch.equal(b.input_ids, enc["input_ids"])
    loss = hooks.generation_loss(b)
    assert loss.shape == (2,)
    loss.sum().backward()
    assert hooks.model.model.text_model.layers[0].mlp.up_proj.weight.grad is not None
    hooks.model.zero_grad(set_to_none=True)
    # greedy codes are the argmax of the teacher-forced logits over the visual tokens at every position
    from harness.models.decoding import positions
    from harness.models.emu3_decode import layout_ids, visual_table

    with torch.no_grad():
        layout = layout_ids(m, codes, 4, 4)
        embeds = m.get_input_embeddings()(torch.cat([b.input_ids, layout[:, :-1]], 1))
        mask = torch.cat([b.attention_mask, torch.ones(2, layout.shape[1] - 1, dtype=torch.long)], 1)
        hidden = m.model.text_model(inputs_embeds=embeds, attention_mask=mask,
                                    position_ids=positions(mask)).last_hidden_state
        start = b.input_ids.shape[1] - 1
        at_codes = hidden[:, start:].reshape(2, 4, 5, -1)[:, :, :4].reshape(2, 16, -1)
        pred = (at_codes @ m.lm_head.weight[visual_table(m)].t()).argmax(-1)
    assert torch.equal(pred, codes)


def test_cfg_dropout_uses_the_negative_prompt(hooks):
    codes = torch.zeros(2, 16, dtype=torch.long)
    kept = hooks.generation_batch(["a red circle", "a red circle"], codes)
    dropped = hooks.generation_batch(["a red circle", "a red circle"], codes, drop_condition=[False, True])
    null = hooks.generation_batch([hooks.negative_prompt], codes[:1])
    tail = dropped.input_ids[1][dropped.attention_mask[1].bool()]
    assert torch.equal(tail, null.input_ids[0][null.attention_mask[0].bool()])
    assert torch.equal(dropped.input_ids[0][dropped.attention_mask[0].bool()],
                       kept.input_ids[0][kept.attention_mask[0].bool()])


def test_lora_targets_and_frozen_modules(hooks):
    import copy

    from peft import LoraConfig, get_peft_model

    targets = hooks.lora_target_modules()
    n_layers = hooks.model.config.text_config.num_hidden_layers
    assert len(targets) == 7 * n_layers and all(t.startswith("model.text_model.layers.") for t in targets)
    names = dict(hooks.model.named_modules())
    assert all(f in names for f in hooks.frozen_modules())
    peft_model = get_peft_model(copy.deepcopy(hooks.model), LoraConfig(r=2, target_modules=hooks.lora_target_regex()))
    lora = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert lora and all("text_model" in n and "lora_" in n for n in lora)
    assert len(lora) == 2 * len(targets)


def test_training_mode_keeps_the_vq_models_batchnorm_frozen(hooks):
    """Emu3's VQ model has BatchNorm3d: in train mode it would normalise with batch statistics and overwrite its
    running ones, so candidates would decode unlike inference and checkpoints (which do not carry them) drift."""
    vq = hooks.model.model.vqmodel
    stats = {k: v.clone() for k, v in vq.state_dict().items() if "running" in k}
    assert stats                                                     # the layers this is about exist
    hooks.train(True)
    try:
        assert hooks.model.training and hooks.model.model.text_model.training and not vq.training
        pixels = hooks.images_to_pixels([_pil((220, 40, 40)), _pil((30, 100, 220))])
        codes, _ = hooks.vq_encode(pixels)
        hooks.decode(hooks.code_embeddings(codes))
        assert all(torch.equal(v, vq.state_dict()[k]) for k, v in stats.items())
    finally:
        hooks.train(False)
