// OpenAI /v1/chat/completions and /v1/completions request bodies as typed data.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/sampling_params.h"
#include "server/fields.h"

namespace velo::server {

struct OpenAIRequest {
  bool chat = true;
  std::string model;
  nlohmann::ordered_json messages;   // chat (client key order kept for templates)
  nlohmann::ordered_json tools;      // chat, optional
  std::string prompt_text;           // completions: a string prompt
  std::vector<int32_t> prompt_ids;   // completions: a prompt given as token ids
  bool prompt_is_ids = false;
  SamplingParams params;             // OpenAI semantics: temperature 1, top_p 1, no top_k/min_p
  int n = 1;
  bool stream = false;
  bool include_usage = false;
  bool echo = false;                 // completions: prepend the prompt to the text
};

// Parses and validates a body; unknown fields are ignored. `n_vocab` bounds logit_bias keys and token prompts.
MaybeError parse_openai_request(const nlohmann::ordered_json& body, bool chat, int max_n, int32_t n_vocab,
                                OpenAIRequest& out);

}  // namespace velo::server
