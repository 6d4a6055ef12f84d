// render_template and ChatTemplate: JSON context -> interpreter values -> text.
#include "tokenizer/chat_template.h"

#include "tokenizer/jinja/interp.h"
#include "tokenizer/jinja/parser.h"

namespace velo {

namespace {

using jinja::Value;

template <class J>
Result<Value> from_json(const J& j, uint32_t depth, uint32_t max_depth) {
  if (depth > max_depth) return make_error("template context nested too deeply");
  switch (j.type()) {
    case J::value_t::null: return Value::none();
    case J::value_t::boolean: return Value::boolean(j.template get<bool>());
    case J::value_t::number_integer: return Value::integer(j.template get<int64_t>());
    case J::value_t::number_unsigned: {
      auto u = j.template get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::number(static_cast<double>(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case J::value_t::number_float: return Value::number(j.template get<double>());
    case J::value_t::string: return Value::string(j.template get<std::string>());
    case J::value_t::array: {
      jinja::List items;
      items.reserve(j.size());
      for (const auto& e : j) {
        VELO_ASSIGN_OR_RETURN(Value v, from_json(e, depth + 1, max_depth));
        items.push_back(std::move(v));
      }
      return Value::make_list(std::move(items));
    }
    case J::value_t::object: {
      auto d = std::make_shared<jinja::Dict>();
      for (auto it = j.begin(); it != j.end(); ++it) {
        VELO_ASSIGN_OR_RETURN(Value v, from_json(it.value(), depth + 1, max_depth));
        d->set(it.key(), std::move(v));
      }
      return Value::make_dict(d);
    }
    default: return make_error("unsupported JSON value in template context");
  }
}

template <class J>
Result<std::string> render_any(std::string_view source, const J& context, const TemplateLimits& lim) {
  if (source.size() > lim.max_source_bytes)
    return make_error("chat template is too large (" + std::to_string(source.size()) + " bytes, limit " +
                      std::to_string(lim.max_source_bytes) + ")");
  if (!context.is_object()) return make_error("template context must be a JSON object");
  jinja::ParseLimits pl;
  pl.max_block_depth = lim.max_depth;
  pl.max_expr_depth = lim.max_expr_depth;
  pl.max_tokens = lim.max_source_bytes;  // at most one token per source byte
  VELO_ASSIGN_OR_RETURN(jinja::Body body, jinja::parse(source, pl));
  VELO_ASSIGN_OR_RETURN(Value ctx, from_json(context, 0, lim.max_context_depth));
  jinja::Interp interp(lim);
  return interp.render(body, ctx);
}

template <class J>
Result<std::string> apply_any(const ChatTemplate& t, const J& messages, bool add_generation_prompt,
                              const J& tools, const J& extra) {
  if (!messages.is_array()) return make_error("messages must be a JSON array");
  if (!tools.is_null() && !tools.is_array()) return make_error("tools must be a JSON array");
  if (!extra.is_null() && !extra.is_object()) return make_error("extra template variables must be a JSON object");
  J ctx = J::object();
  ctx["messages"] = messages;
  ctx["tools"] = tools;
  ctx["add_generation_prompt"] = add_generation_prompt;
  ctx["bos_token"] = t.bos_token;
  ctx["eos_token"] = t.eos_token;
  if (extra.is_object())
    for (auto it = extra.begin(); it != extra.end(); ++it) ctx[it.key()] = it.value();
  return render_any(t.source, ctx, t.limits);
}

// Fallback templates for models that ship none. ChatML renders tool calls the
// way Qwen-style models expect; Llama 3 and Gemma are the vendors' own templates.
constexpr const char* kChatML =
    "{%- for message in messages -%}\n"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}\n"
    "{%- if message['content'] is string -%}{{- message['content'] -}}\n"
    "{%- elif message['content'] is not none and message['content'] is defined -%}{{- message['content'] | tojson -}}\n"
    "{%- endif -%}\n"
    "{%- if message['tool_calls'] is defined and message['tool_calls'] -%}\n"
    "{%- for tc in message['tool_calls'] -%}\n"
    "{%- set f = tc['function'] if tc['function'] is defined else tc -%}\n"
    "{{- '\\n<tool_call>\\n{\"name\": \"' + f['name'] + '\", \"arguments\": ' + (f['arguments'] if f['arguments'] is string else f['arguments'] | tojson) + '}\\n</tool_call>' -}}\n"
    "{%- endfor -%}\n"
    "{%- endif -%}\n"
    "{{- '<|im_end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}";

constexpr const char* kLlama3 =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}";

constexpr const char* kGemma =
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n"
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\\n'}}\n"
    "{%- endif -%}";

}  // namespace

Result<std::string> render_template(std::string_view source, const nlohmann::json& context,
                                    const TemplateLimits& limits) {
  return render_any(source, context, limits);
}

Result<std::string> render_template(std::string_view source, const nlohmann::ordered_json& context,
                                    const TemplateLimits& limits) {
  return render_any(source, context, limits);
}

Result<ChatTemplate> ChatTemplate::builtin_named(std::string_view name, std::string bos, std::string eos) {
  ChatTemplate t;
  if (name == "chatml") t.source = kChatML;
  else if (name == "llama3") t.source = kLlama3;
  else if (name == "gemma") t.source = kGemma;
  else return make_error("unknown built-in chat template '" + std::string(name) + "' (chatml, llama3, gemma)");
  t.name = std::string(name);
  t.builtin = true;
  t.bos_token = std::move(bos);
  t.eos_token = std::move(eos);
  return t;
}

Status ChatTemplate::validate() const {
  if (source.size() > limits.max_source_bytes) return make_error("chat template is too large");
  jinja::ParseLimits pl;
  pl.max_block_depth = limits.max_depth;
  pl.max_expr_depth = limits.max_expr_depth;
  pl.max_tokens = limits.max_source_bytes;
  VELO_ASSIGN_OR_RETURN(jinja::Body body, jinja::parse(source, pl));
  (void)body;
  return {};
}

Result<std::string> ChatTemplate::apply(const nlohmann::json& messages, bool add_generation_prompt,
                                        const nlohmann::json& tools, const nlohmann::json& extra) const {
  return apply_any(*this, messages, add_generation_prompt, tools, extra);
}

Result<std::string> ChatTemplate::apply(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                        const nlohmann::ordered_json& tools,
                                        const nlohmann::ordered_json& extra) const {
  return apply_any(*this, messages, add_generation_prompt, tools, extra);
}

}  // namespace velo
