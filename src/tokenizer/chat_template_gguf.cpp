// ChatTemplate::from_gguf lives apart from the interpreter so that code using
// only render_template does not pull in the GGUF reader and tokenizer.
#include "gguf/gguf.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace velo {

namespace {

std::string token_string(const Tokenizer& tok, Token t) {
  if (t < 0 || t >= tok.n_vocab()) return "";
  return std::string(tok.token_text(t));
}

bool vocab_has(const Tokenizer& tok, std::string_view text) {
  for (Token t = 0; t < tok.n_vocab(); ++t)
    if (tok.token_text(t) == text) return true;
  return false;
}

}  // namespace

Result<ChatTemplate> ChatTemplate::from_gguf(const gguf::File& file, const Tokenizer& tok) {
  std::string bos = token_string(tok, tok.bos());
  std::string eos = token_string(tok, tok.eos());
  if (const gguf::Value* v = file.find("tokenizer.chat_template")) {
    if (v->type != gguf::ValueType::STRING)
      return make_error("GGUF key tokenizer.chat_template is " + std::string(gguf::value_type_name(v->type)) +
                        ", expected STRING");
    ChatTemplate t;
    t.source = std::string(v->str);
    t.name = "model";
    t.bos_token = std::move(bos);
    t.eos_token = std::move(eos);
    auto st = t.validate();
    if (!st.ok()) return make_error("the model's chat template is invalid: " + st.message());
    return t;
  }
  std::string arch;
  if (const gguf::Value* a = file.find("general.architecture"); a && a->type == gguf::ValueType::STRING)
    arch = std::string(a->str);
  const char* name = "chatml";
  if (arch.rfind("gemma", 0) == 0 || vocab_has(tok, "<start_of_turn>")) name = "gemma";
  else if (vocab_has(tok, "<|start_header_id|>") && vocab_has(tok, "<|eot_id|>")) name = "llama3";
  return builtin_named(name, std::move(bos), std::move(eos));
}

}  // namespace velo
