//! Chat formatting: the built-in ChatML format, Hugging Face Jinja templates (checked against
//! what Python's jinja2 renders under `transformers`' settings), the real SmolLM2 file's
//! template, and the sandbox (typed errors, bounded time and output).

mod common;

use std::time::{Duration, Instant};

use orcinus::chat::{JinjaTemplate, Limits, Message, Template, TemplateError};
use orcinus::Error;

/// The MistralOrca model card's system prompt.
const ORCA_SYSTEM: &str = "You are MistralOrca, a large language model trained by Alignment Lab AI. \
                           Write out your reasoning step-by-step to be sure you get the right answers!";

fn orca_conversation() -> Vec<Message> {
    vec![
        Message::new("system", ORCA_SYSTEM),
        Message::new("user", "How are you?"),
        Message::new("assistant", "I am doing well!"),
        Message::new(
            "user",
            "Please tell me about how mistral winds have attracted super-orcas.",
        ),
    ]
}

/// The ChatML template as Hugging Face ships it (e.g. in Mistral-7B-OpenOrca).
const HF_CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// meta-llama/Llama-2-7b-chat-hf's chat template.
const LLAMA2: &str = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

/// mistralai/Mistral-7B-Instruct-v0.1's chat template.
const MISTRAL_INSTRUCT: &str = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

fn template_err(r: orcinus::Result<impl std::fmt::Debug>) -> TemplateError {
    match r {
        Err(Error::Template(e)) => e,
        other => panic!("expected a template error, got {other:?}"),
    }
}

#[test]
fn chatml_mistral_orca_byte_for_byte() {
    let out = Template::ChatMl
        .render(&orca_conversation(), true, "<s>", "</s>")
        .unwrap();
    let want = "<|im_start|>system\n\
                You are MistralOrca, a large language model trained by Alignment Lab AI. Write out your reasoning step-by-step to be sure you get the right answers!<|im_end|>\n\
                <|im_start|>user\n\
                How are you?<|im_end|>\n\
                <|im_start|>assistant\n\
                I am doing well!<|im_end|>\n\
                <|im_start|>user\n\
                Please tell me about how mistral winds have attracted super-orcas.<|im_end|>\n\
                <|im_start|>assistant\n";
    assert_eq!(out, want);

    let no_prompt = Template::ChatMl
        .render(&orca_conversation(), false, "<s>", "</s>")
        .unwrap();
    assert_eq!(
        no_prompt,
        want.strip_suffix("<|im_start|>assistant\n").unwrap()
    );
}

#[test]
fn hf_chatml_jinja_equals_builtin() {
    let jinja = Template::jinja(HF_CHATML).unwrap();
    for msgs in [
        orca_conversation(),
        vec![],
        orca_conversation()[1..2].to_vec(),
    ] {
        for gen in [false, true] {
            assert_eq!(
                jinja.render(&msgs, gen, "<s>", "</s>").unwrap(),
                Template::ChatMl.render(&msgs, gen, "<s>", "</s>").unwrap(),
                "{} messages, add_generation_prompt={gen}",
                msgs.len()
            );
        }
    }
}

#[test]
fn smollm2_file_template() {
    let f = orcinus::gguf::File::open(common::smollm2()).unwrap();
    let t = Template::from_metadata(f.metadata()).unwrap();
    assert!(matches!(t, Template::Jinja(_)));

    // No system message: the template injects its default one.
    let msgs = [Message::new("user", "What is 2+2?")];
    assert_eq!(
        t.render(&msgs, true, "<|im_start|>", "<|im_end|>").unwrap(),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
    // With one, it is ChatML.
    let conv = orca_conversation();
    assert_eq!(
        t.render(&conv, true, "<|im_start|>", "<|im_end|>").unwrap(),
        Template::ChatMl.render(&conv, true, "", "").unwrap()
    );
}

#[test]
fn llama2_and_mistral_instruct_templates() {
    // Expected strings: jinja2 3.1.6's rendering with transformers' environment settings.
    let msgs = [
        Message::new("system", "You are terse."),
        Message::new("user", "  Hi there!  "),
        Message::new("assistant", "Hello. "),
        Message::new("user", "What is 2+2?"),
    ];
    let llama2 = Template::jinja(LLAMA2).unwrap();
    assert_eq!(
        llama2.render(&msgs, true, "<s>", "</s>").unwrap(),
        "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\n  Hi there! [/INST] Hello. </s><s>[INST] What is 2+2? [/INST]"
    );
    let mistral = Template::jinja(MISTRAL_INSTRUCT).unwrap();
    assert_eq!(
        mistral.render(&msgs[1..], true, "<s>", "</s>").unwrap(),
        "<s>[INST]   Hi there!   [/INST]Hello. </s> [INST] What is 2+2? [/INST]"
    );
}

#[test]
fn raise_exception_is_typed() {
    let mistral = Template::jinja(MISTRAL_INSTRUCT).unwrap();
    let bad = [Message::new("user", "a"), Message::new("user", "b")];
    assert_eq!(
        template_err(mistral.render(&bad, true, "<s>", "</s>")),
        TemplateError::Raised(
            "Conversation roles must alternate user/assistant/user/assistant/...".into()
        )
    );
    let tool = [Message::new("user", "a"), Message::new("tool", "b")];
    assert_eq!(
        template_err(mistral.render(&tool, true, "<s>", "</s>")),
        TemplateError::Raised("Only user and assistant roles are supported!".into())
    );
    // The message reaches the user through Display.
    let e = mistral.render(&bad, true, "<s>", "</s>").unwrap_err();
    assert!(
        e.to_string().contains("Conversation roles must alternate"),
        "{e}"
    );
}

/// Whitespace control (trim_blocks, lstrip_blocks), namespace, loop controls, Python methods,
/// Python-style `tojson`, `True`/`None` printing and lenient undefined values, all compared
/// with jinja2's output under `transformers`' settings.
#[test]
fn hf_semantics_match_jinja2() {
    let src = r#"{%- set ns = namespace(found=false) -%}
{% for message in messages %}
    {% if message.role == 'system' %}
        {% set ns.found = true %}
    {% endif %}
{% endfor %}
{% if not ns.found %}
<|system|>
Default{{ eos_token }}
{% endif %}
{% for message in messages %}
<|{{ message['role'] }}|>
{{ message['content'] | trim }}{{ eos_token }}
{% if loop.last and add_generation_prompt %}
<|assistant|>
{% endif %}
{% endfor %}
{{ {"name": "get_weather", "parameters": {"city": "Zürich <x> & 'y'", "n": 1.0, "big": 1e20, "small": 0.00001, "ok": true, "none": none, "list": [1, "two", [3]]}} | tojson }}
{{ {"b": 1, "a": [1, 2, {}], "c": []} | tojson(indent=2, sort_keys=true) }}
{{ "é\n" | tojson(ensure_ascii=true) }} {{ [1, 2] | tojson(separators=[",", ":"]) }}
{{ "  Hello World  ".strip().lower().startswith("hello") }} {{ none }} {{ false }}
{{ "a,b,c".split(",") | join("|") }} {{ "x-y".replace("-", "+").upper() }} {{ "abc".endswith("bc") }}
{% for i in range(10) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}

{{ messages | length }} {{ messages[-1].content[:5] }} {{ messages | map(attribute='role') | join(',') }}
{{ "%s=%d" | format("k", 3) }} {{ messages[0].content | upper | truncate(9) }}
{% for k, v in {"x": 1, "y": 2}.items() %}{{ k }}{{ v }};{% endfor %}

{% if tools is defined %}tools!{% else %}no tools{% endif %} {{ undefined_var }}|
"#;
    let msgs = [
        Message::new("user", "  Hello, world!  "),
        Message::new("assistant", "Hi."),
    ];
    let want = "<|system|>\nDefault</s>\n<|user|>\nHello, world!</s>\n<|assistant|>\nHi.</s>\n<|assistant|>\n{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Zürich <x> & 'y'\", \"n\": 1.0, \"big\": 1e+20, \"small\": 1e-05, \"ok\": true, \"none\": null, \"list\": [1, \"two\", [3]]}}\n{\n  \"a\": [\n    1,\n    2,\n    {}\n  ],\n  \"b\": 1,\n  \"c\": []\n}\n\"\\u00e9\\n\" [1,2]\nTrue None False\na|b|c X+Y True\n023\n2 Hi. user,assistant\nk=3  ...\nx1;y2;\nno tools |";
    let t = Template::jinja(src).unwrap();
    assert_eq!(t.render(&msgs, true, "<s>", "</s>").unwrap(), want);
}

#[test]
fn syntax_errors_are_typed() {
    for src in [
        "{% if %}",
        "{% for x in messages %}",
        "{{ messages[0 }}",
        "{% endfor %}",
        "{{ 'unterminated }}",
        &format!(
            "{}1{}",
            "{{ ".to_string() + &"(".repeat(10_000),
            ")".repeat(10_000) + " }}"
        ),
    ] {
        match template_err(Template::jinja(src)) {
            TemplateError::Syntax(msg) => assert!(!msg.is_empty()),
            e => panic!("{src:.40}: expected a syntax error, got {e:?}"),
        }
    }
}

#[test]
fn render_errors_are_typed() {
    let m = [Message::new("user", "x")];
    for src in [
        "{{ no_such_function() }}",
        "{{ 'x' | no_such_filter }}",
        "{{ messages[5].role.upper() }}",
        "{% include 'other.jinja' %}",
        "{% extends 'base.jinja' %}",
        "{{ 1 / 0 }}",
        "{{ messages | tojson(bogus=1) }}",
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    ] {
        let t = Template::jinja(src).unwrap();
        match template_err(t.render(&m, true, "", "")) {
            TemplateError::Render(msg) => assert!(!msg.is_empty()),
            e => panic!("{src}: expected a render error, got {e:?}"),
        }
    }
}

#[test]
fn huge_output_fails_within_bounded_time() {
    let m = [Message::new("user", "x")];
    let check = |src: &str, limits: Limits| {
        let t = JinjaTemplate::with_limits(src, limits).unwrap();
        let start = Instant::now();
        let e = template_err(t.render(&m, true, "", ""));
        let took = start.elapsed();
        assert!(took < Duration::from_secs(10), "{src}: took {took:?}");
        e
    };
    let dflt = Limits::default();

    // Lots of output from few instructions: the output cap stops it.
    let e = check(
        "{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}",
        dflt,
    );
    assert!(
        matches!(
            e,
            TemplateError::OutputTooLong { limit: 1048576 } | TemplateError::OutOfFuel { .. }
        ),
        "{e:?}"
    );
    let e = check(
        "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
        Limits {
            fuel: u64::MAX,
            ..dflt
        },
    );
    assert_eq!(e, TemplateError::OutputTooLong { limit: 1 << 20 });

    // 10^10 iterations with or without output: fuel stops them.
    for src in [
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    ] {
        let e = check(src, dflt);
        assert!(
            matches!(
                e,
                TemplateError::OutOfFuel { fuel: 2_000_000 } | TemplateError::OutputTooLong { .. }
            ),
            "{e:?}"
        );
    }
    // A huge string that is never written, and a deep value fed to tojson.
    let e = check("{% set s = 'x' * 1000000000 %}ok", dflt);
    assert!(
        matches!(
            e,
            TemplateError::OutOfFuel { .. } | TemplateError::Render(_)
        ),
        "{e:?}"
    );
    let e = check(
        "{% set ns = namespace(v=[]) %}{% for i in range(5000) %}{% set ns.v = [ns.v] %}{% endfor %}{{ ns.v | tojson }}",
        dflt,
    );
    assert!(
        matches!(
            e,
            TemplateError::Render(_) | TemplateError::OutOfFuel { .. }
        ),
        "{e:?}"
    );
}

#[test]
fn limits_do_not_get_in_the_way_of_long_conversations() {
    // 2,000 messages of ~400 bytes (~800 KB of prompt) through the SmolLM2-style template.
    let f = orcinus::gguf::File::open(common::smollm2()).unwrap();
    let t = Template::from_metadata(f.metadata()).unwrap();
    let msgs: Vec<Message> = (0..2000)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            Message::new(role, format!("{i:>5} ").repeat(66))
        })
        .collect();
    let out = t.render(&msgs, true, "", "").unwrap();
    assert_eq!(out, {
        let mut want = String::from(
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n",
        );
        want.push_str(&Template::ChatMl.render(&msgs, true, "", "").unwrap());
        want
    });
}
