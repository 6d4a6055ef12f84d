#include "server/openai_request.h"

#include <gtest/gtest.h>

#include "server/metrics.h"
#include "server/prompt.h"

namespace velo::server {
namespace {

using nlohmann::json;

std::optional<ApiError> parse(const nlohmann::ordered_json& body, bool chat, OpenAIRequest& out) {
  return parse_openai_request(body, chat, 16, 1000, out);
}

TEST(OpenAIRequest, ChatDefaultsFollowOpenAI) {
  OpenAIRequest r;
  ASSERT_FALSE(parse({{"model", "m"}, {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}}, true, r));
  EXPECT_EQ(r.params.temperature, 1.0f);
  EXPECT_EQ(r.params.top_p, 1.0f);
  EXPECT_EQ(r.params.top_k, 0);
  EXPECT_EQ(r.params.max_tokens, -1);
  EXPECT_EQ(r.n, 1);
  EXPECT_FALSE(r.stream);
}

TEST(OpenAIRequest, ReadsEveryField) {
  OpenAIRequest r;
  json body = {{"prompt", "x"}, {"temperature", 0.5}, {"top_p", 0.9}, {"seed", 42}, {"max_tokens", 7},
               {"stop", json::array({"a", "b"})}, {"presence_penalty", 0.5}, {"frequency_penalty", -0.5},
               {"logit_bias", {{"13", 5}}}, {"n", 3}, {"stream", true}, {"stream_options", {{"include_usage", true}}},
               {"logprobs", 2}, {"echo", true}, {"unknown_field", {1, 2, 3}}};
  ASSERT_FALSE(parse(body, false, r));
  EXPECT_EQ(r.prompt_text, "x");
  EXPECT_FLOAT_EQ(r.params.temperature, 0.5f);
  EXPECT_EQ(r.params.seed, 42u);
  EXPECT_EQ(r.params.max_tokens, 7);
  EXPECT_EQ(r.params.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_FLOAT_EQ(r.params.logit_bias.at(13), 5.0f);
  EXPECT_EQ(r.n, 3);
  EXPECT_TRUE(r.stream && r.include_usage && r.echo);
  EXPECT_TRUE(r.params.logprobs);
  EXPECT_EQ(r.params.top_logprobs, 2);
}

TEST(OpenAIRequest, MaxCompletionTokensAndTokenPrompts) {
  OpenAIRequest r;
  ASSERT_FALSE(parse({{"prompt", json::array({1, 2, 3})}, {"max_completion_tokens", 9}}, false, r));
  EXPECT_TRUE(r.prompt_is_ids);
  EXPECT_EQ(r.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(r.params.max_tokens, 9);
}

TEST(OpenAIRequest, RejectsBadValuesNamingTheField) {
  struct Case {
    json body;
    const char* param;
  } cases[] = {
      {{{"prompt", "x"}, {"temperature", -1}}, "temperature"},
      {{{"prompt", "x"}, {"temperature", "hot"}}, "temperature"},
      {{{"prompt", "x"}, {"top_p", 0}}, "top_p"},
      {{{"prompt", "x"}, {"n", 17}}, "n"},
      {{{"prompt", "x"}, {"max_tokens", 0}}, "max_tokens"},
      {{{"prompt", "x"}, {"stop", 5}}, "stop"},
      {{{"prompt", "x"}, {"stop", json::array({""})}}, "stop"},
      {{{"prompt", "x"}, {"logit_bias", {{"abc", 1}}}}, "logit_bias"},
      {{{"prompt", "x"}, {"logit_bias", {{"1000", 1}}}}, "logit_bias"},
      {{{"prompt", "x"}, {"logit_bias", {{"1", 101}}}}, "logit_bias"},
      {{{"prompt", json::array({5000})}}, "prompt"},
      {{{"prompt", json::array({"a", "b"})}}, "prompt"},
      {{{"prompt", 3}}, "prompt"},
      {{{"temperature", 1}}, "prompt"},
  };
  for (const auto& c : cases) {
    OpenAIRequest r;
    auto err = parse(c.body, false, r);
    ASSERT_TRUE(err) << c.body.dump();
    EXPECT_EQ(err->status, 400);
    EXPECT_EQ(err->param, c.param) << c.body.dump() << " -> " << err->message;
    EXPECT_FALSE(err->message.empty());
  }
  OpenAIRequest r;
  auto err = parse({{"messages", json::array()}, {"top_logprobs", 3}}, true, r);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "top_logprobs");
  EXPECT_TRUE(parse(json::array(), true, r));
}

TEST(Messages, NormalisesContentPartsAndToolArguments) {
  using json = nlohmann::ordered_json;
  json in = json::array(
      {{{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", "a"}}, {{"type", "text"}, {"text", "b"}}})}},
       {{"role", "assistant"}, {"content", nullptr},
        {"tool_calls", json::array({{{"type", "function"},
                                      {"function", {{"name", "f"}, {"arguments", "{\"x\": 1}"}}}}})}}});
  json out;
  ASSERT_FALSE(normalize_messages(in, out));
  EXPECT_EQ(out[0]["content"], "ab");
  EXPECT_EQ(out[1]["content"], "");
  EXPECT_EQ(out[1]["tool_calls"][0]["function"]["arguments"]["x"], 1);
  EXPECT_TRUE(normalize_messages(json::array({{{"content", "no role"}}}), out));
  EXPECT_TRUE(normalize_messages(json::array({{{"role", "user"}, {"content", 5}}}), out));
  EXPECT_TRUE(normalize_messages(json::object(), out));
}

TEST(Metrics, PrometheusTextHasCumulativeBuckets) {
  Metrics m;
  m.ttft.observe(0.003);
  m.ttft.observe(0.05);
  m.ttft.observe(1e9);
  EngineStats s;
  s.running = 2;
  s.prompt_tokens_total = 10;
  std::string text = m.render("tiny", s);
  EXPECT_NE(text.find("vllm:num_requests_running{model_name=\"tiny\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("vllm:prompt_tokens_total{model_name=\"tiny\"} 10\n"), std::string::npos);
  EXPECT_NE(text.find("vllm:time_to_first_token_seconds_bucket{model_name=\"tiny\",le=\"0.001\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("vllm:time_to_first_token_seconds_bucket{model_name=\"tiny\",le=\"0.005\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("vllm:time_to_first_token_seconds_bucket{model_name=\"tiny\",le=\"0.06\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("vllm:time_to_first_token_seconds_bucket{model_name=\"tiny\",le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("vllm:time_to_first_token_seconds_count{model_name=\"tiny\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE vllm:inter_token_latency_seconds histogram"), std::string::npos);
}

TEST(ApiError, OpenAIShape) {
  ApiError e = bad_request("too long", "messages", "context_length_exceeded");
  json j = e.openai_json();
  EXPECT_EQ(j["error"]["message"], "too long");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "messages");
  EXPECT_EQ(j["error"]["code"], "context_length_exceeded");
  EXPECT_TRUE(ApiError{}.openai_json()["error"]["code"].is_null());
}

}  // namespace
}  // namespace velo::server

namespace velo::server {
namespace {

TEST(Messages, ContentPartsOfTheWrongTypeAreRejectedNotThrown) {
  using json = nlohmann::ordered_json;
  json out;
  json in = json::array({{{"role", "system"}, {"content", json::array({{{"type", json::object()}, {"text", ""}}})}}});
  auto err = normalize_messages(in, out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->status, 400);
}

}  // namespace
}  // namespace velo::server

namespace velo::server {
namespace {

TEST(Messages, KeepTheClientsKeyOrder) {
  auto in = nlohmann::ordered_json::parse(R"([{"role":"user","content":"x","zeta":1,"alpha":2}])");
  nlohmann::ordered_json out;
  ASSERT_FALSE(normalize_messages(in, out));
  EXPECT_EQ(out.dump(), R"([{"role":"user","content":"x","zeta":1,"alpha":2}])");
}

}  // namespace
}  // namespace velo::server
