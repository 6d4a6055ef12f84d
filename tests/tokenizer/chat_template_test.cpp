// ChatTemplate: the model's template or a built-in fallback, the context it is
// rendered with, tool calls, and errors on bad input.
#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include "gguf/gguf.h"
#include "test_models.h"
#include "tokenizer/tokenizer.h"

namespace velo {
namespace {

using nlohmann::json;

ChatTemplate make(const std::string& src) {
  ChatTemplate t;
  t.source = src;
  t.name = "test";
  t.bos_token = "<s>";
  t.eos_token = "</s>";
  return t;
}

TEST(ChatTemplate, ContextHasMessagesTokensAndGenerationFlag) {
  auto t = make("{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}"
                "{% if add_generation_prompt %}A:{% endif %}{{ eos_token }}|{{ tools is none }}|{{ extra_var }}");
  json msgs = {{{"role", "user"}, {"content", "hi"}}};
  auto r = t.apply(msgs, true, nullptr, {{"extra_var", 7}});
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(*r, "<s>user:hi;A:</s>|True|7");
  r = t.apply(msgs, false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "<s>user:hi;</s>|True|");
}

TEST(ChatTemplate, ToolsAndToolCalls) {
  auto t = make("{% for tool in tools %}{{ tool.function.name }} {% endfor %}"
                "{% for m in messages %}{% if m.tool_calls %}{% for c in m.tool_calls %}"
                "{{ c.function.name }}({{ c.function.arguments if c.function.arguments is string else c.function.arguments|tojson }})"
                "{% endfor %}{% elif m.role == 'tool' %}[{{ m.content }}]{% endif %}{% endfor %}");
  json tools = {{{"type", "function"}, {"function", {{"name", "get_weather"}}}}};
  json msgs = {{{"role", "assistant"}, {"content", nullptr},
                {"tool_calls", {{{"function", {{"name", "get_weather"}, {"arguments", {{"city", "Paris"}}}}}},
                                {{"function", {{"name", "get_weather"}, {"arguments", "{\"city\": \"Oslo\"}"}}}}}}},
               {{"role", "tool"}, {"content", "21C"}}};
  auto r = t.apply(msgs, false, tools);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(*r, "get_weather get_weather({\"city\": \"Paris\"})get_weather({\"city\": \"Oslo\"})[21C]");
}

TEST(ChatTemplate, RejectsBadInput) {
  auto t = make("{{ messages }}");
  EXPECT_FALSE(t.apply(json::object(), true).ok());
  EXPECT_FALSE(t.apply(json::array(), true, json::object()).ok());
  auto bad = make("{% if %}");
  EXPECT_FALSE(bad.validate().ok());
  EXPECT_NE(bad.validate().message().find("line 1"), std::string::npos);
}

TEST(ChatTemplate, BuiltinsRender) {
  json msgs = {{{"role", "system"}, {"content", "S"}}, {{"role", "user"}, {"content", "Hi"}}};
  auto chatml = ChatTemplate::builtin_named("chatml", "", "<|im_end|>");
  ASSERT_TRUE(chatml.ok());
  auto r = chatml->apply(msgs, true);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(*r, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");

  auto llama3 = ChatTemplate::builtin_named("llama3", "<|begin_of_text|>", "<|eot_id|>");
  ASSERT_TRUE(llama3.ok());
  r = llama3->apply(msgs, true);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(*r,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");

  auto gemma = ChatTemplate::builtin_named("gemma", "<bos>", "<eos>");
  ASSERT_TRUE(gemma.ok());
  r = gemma->apply(msgs, true);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(*r, "<bos><start_of_turn>user\nS\n\nHi<end_of_turn>\n<start_of_turn>model\n");
  // Gemma insists on alternating roles, through raise_exception.
  json twice = {{{"role", "user"}, {"content", "a"}}, {{"role", "user"}, {"content", "b"}}};
  auto e = gemma->apply(twice, true);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.message().find("Conversation roles must alternate"), std::string::npos);

  EXPECT_FALSE(ChatTemplate::builtin_named("nope", "", "").ok());
}

struct Loaded {
  std::unique_ptr<gguf::File> file;
  std::unique_ptr<Tokenizer> tok;
};

Loaded load(const std::string& name) {
  Loaded l;
  auto f = gguf::File::open(test::model_path(name));
  if (!f.ok()) {
    ADD_FAILURE() << f.message();
    return l;
  }
  l.file = std::move(*f);
  auto t = Tokenizer::from_gguf(*l.file);
  if (!t.ok()) {
    ADD_FAILURE() << t.message();
    return l;
  }
  l.tok = std::move(*t);
  return l;
}

TEST(ChatTemplateGguf, SmolLM2UsesItsOwnTemplate) {
  auto l = load("SmolLM2-135M-Instruct.Q4_1.gguf");
  ASSERT_TRUE(l.tok);
  auto t = ChatTemplate::from_gguf(*l.file, *l.tok);
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_EQ(t->name, "model");
  EXPECT_FALSE(t->builtin);
  json msgs = {{{"role", "user"}, {"content", "Hi"}}};
  auto r = t->apply(msgs, true);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(*r,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateGguf, Gemma3FallsBackToGemma) {
  auto l = load("gemma-3-270m-q4_k_m.gguf");
  ASSERT_TRUE(l.tok);
  auto t = ChatTemplate::from_gguf(*l.file, *l.tok);
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_EQ(t->name, "gemma");
  EXPECT_TRUE(t->builtin);
  EXPECT_EQ(t->bos_token, "<bos>");
  auto r = t->apply(json::array({{{"role", "user"}, {"content", "Hi"}}}), true);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(*r, "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
}

}  // namespace
}  // namespace velo
