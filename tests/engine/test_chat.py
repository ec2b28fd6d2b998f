"""Chat templates: read by the loaders from the model's own files, rendered in jinja2's sandbox, and
equal to what transformers' `apply_chat_template` renders for the same template and messages."""

import json

import pytest
from transformers import AutoTokenizer

from app.engine import ChatTemplateError, load_model, render_chat
from tests.engine.test_parity_tiny import build_llama

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You answer in French."}, {"role": "user", "content": "Hello!"}],
    [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "4"},
     {"role": "user", "content": "And times 3? Café, 日本語, 😀, \"quotes\" & <tags>\n  indented"}],
    [{"role": "user", "content": ""}],
]

# Uses what templates in the wild use: the special tokens, loop controls, namespace, tojson on
# non-ASCII text, raise_exception, whitespace control under trim_blocks/lstrip_blocks.
TEMPLATE = """{{ bos_token }}
{% set ns = namespace(turns=0) %}
{% for message in messages %}
    {% if message['role'] == 'system' and not loop.first %}
        {{ raise_exception('the system message must come first') }}
    {% endif %}
    {% if message['content'] == '' %}{% continue %}{% endif %}
    {% set ns.turns = ns.turns + 1 %}
    [{{ message['role'] | upper }} {{ ns.turns }}] {{ message['content'] | tojson }}{{ eos_token }}
{% endfor %}
{% if add_generation_prompt %}[ASSISTANT]{% endif %}"""


@pytest.fixture(scope="module")
def hf_smol_tokenizer(smol):
    return AutoTokenizer.from_pretrained(smol.source.parent, gguf_file=smol.source.name)


@pytest.mark.parametrize("messages", CONVERSATIONS)
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_smollm2_renders_as_transformers(smol, hf_smol_tokenizer, messages, add_generation_prompt):
    assert smol.chat_template == hf_smol_tokenizer.chat_template  # the GGUF's tokenizer.chat_template
    ours = smol.chat_prompt(messages, add_generation_prompt=add_generation_prompt)
    ref = hf_smol_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    assert ours == ref
    ref_ids = hf_smol_tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt)
    ref_ids = ref_ids["input_ids"] if isinstance(ref_ids, dict) or hasattr(ref_ids, "keys") else ref_ids
    assert [t.id for t in smol.tokenizer.encode(ours)] == list(ref_ids)


def test_a_string_is_one_user_message(smol):
    assert smol.chat_prompt("Hi") == smol.chat_prompt([{"role": "user", "content": "Hi"}])
    assert smol.chat_prompt("Hi").endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert smol.tokenize(smol.chat_prompt("Hi"))[0].text == "<|im_start|>"  # the control token, whole


@pytest.fixture(scope="module")
def folder_model(tmp_path_factory):
    """A tiny Llama folder whose tokenizer_config.json carries a chat template and its special tokens."""
    folder = tmp_path_factory.mktemp("chat-llama")
    build_llama(folder)
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>",
        "eos_token": {"content": "</s>", "special": True, "__type": "AddedToken"}, "chat_template": TEMPLATE}))
    return folder, load_model(folder, "chat-llama", cache_dir=tmp_path_factory.mktemp("store"))


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_folder_template_renders_as_transformers(folder_model, messages):
    folder, model = folder_model
    hf = AutoTokenizer.from_pretrained(folder)
    assert model.chat_template == TEMPLATE and model.special_tokens == {"bos_token": "<s>", "eos_token": "</s>"}
    for agp in (True, False):
        assert model.chat_prompt(messages, add_generation_prompt=agp) == hf.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=agp)
    assert model.eos_ids == (2,)  # LlamaConfig's default, from the saved generation_config.json


def test_chat_template_jinja_file_wins(tmp_path, folder_model):
    folder, _ = folder_model
    (folder / "chat_template.jinja").write_text("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}")
    try:
        model = load_model(folder, "chat-llama-file", cache_dir=tmp_path)
        assert model.chat_prompt("hi") == "<user>hi" == AutoTokenizer.from_pretrained(folder).apply_chat_template(
            [{"role": "user", "content": "hi"}], tokenize=False)
    finally:
        (folder / "chat_template.jinja").unlink()


def test_template_errors_are_clear(folder_model):
    _, model = folder_model
    with pytest.raises(ChatTemplateError, match="the system message must come first"):
        model.chat_prompt([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}])
    with pytest.raises(ChatTemplateError, match="role"):
        model.chat_prompt([{"role": "wizard", "content": "a"}])
    with pytest.raises(ChatTemplateError, match="no chat template"):
        render_chat(None, "hi")
    with pytest.raises(ChatTemplateError, match="does not compile"):
        render_chat("{% for %}", "hi")


@pytest.mark.parametrize("attack", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ messages.append({'role': 'user', 'content': 'x'}) }}",  # the immutable sandbox: no mutating what was passed
    "{{ cycler.__init__.__globals__ }}",
])
def test_templates_run_sandboxed(attack):
    with pytest.raises(ChatTemplateError, match="unsafe"):
        render_chat(attack, "hi")


def test_models_without_a_template(tiny_gpt2):
    assert tiny_gpt2.chat_template is None and tiny_gpt2.eos_ids == (0,)
    with pytest.raises(ChatTemplateError, match="no chat template"):
        tiny_gpt2.chat_prompt("hi")


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    from tests.engine.test_parity_tiny import build_gpt2

    folder = tmp_path_factory.mktemp("gpt2")
    build_gpt2(folder)
    return load_model(folder, "gpt2", cache_dir=tmp_path_factory.mktemp("store"))


def test_template_and_end_ids_survive_the_weight_store(smol, cache_dir, folder_model, tmp_path, monkeypatch):
    """A second start maps the stored weights: what generation needs comes back from the store too."""
    from app.engine import loaders

    folder, _ = folder_model
    first = load_model(folder, "chat-llama-store", cache_dir=tmp_path)
    for name in ("read_gguf", "read_hf_folder", "read_generation_meta"):  # a store hit converts nothing
        monkeypatch.setattr(loaders, name, lambda *a, **k: pytest.fail("converted again instead of using the store"))
    again = load_model(folder, "chat-llama-store", cache_dir=tmp_path)
    assert (again.chat_template, again.eos_ids, again.special_tokens) == (first.chat_template, first.eos_ids, first.special_tokens)
    smol_again = load_model(smol.source, smol.id, cache_dir=cache_dir)  # the session's store of the GGUF
    assert (smol_again.chat_template, smol_again.eos_ids, smol_again.special_tokens) == (
        smol.chat_template, (2,), {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"})
    assert smol_again.chat_template.startswith("{% for message in messages %}")
