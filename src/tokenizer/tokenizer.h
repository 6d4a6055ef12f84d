// Tokenizers built from GGUF metadata (tokenizer.ggml.*): SentencePiece-style
// ("llama") and byte-level BPE ("gpt2"). Matches llama.cpp token for token.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "gguf/gguf.h"

namespace velo {

using Token = int32_t;

enum class TokenAttr : uint8_t { Normal, Unknown, Control, UserDefined, Unused, Byte };

enum class SpecialTokens { Parse, AsText };  // match special-token strings in the input or not

class Tokenizer {
 public:
  static Result<std::unique_ptr<Tokenizer>> from_gguf(const gguf::File& file);
  virtual ~Tokenizer() = default;

  // Token ids for `text`; BOS first when `add_bos` and the model adds one (and EOS last
  // when the model adds one: `add_bos` is llama.cpp's add_special). Never fails: invalid
  // UTF-8 is tokenized like llama.cpp does (byte tokens for SPM, U+FFFD for BPE).
  virtual std::vector<Token> encode(std::string_view text, bool add_bos,
                                    SpecialTokens special = SpecialTokens::Parse) const = 0;
  // Raw bytes of one token (byte tokens become their byte, SPM markers become spaces).
  // Control tokens give "" unless `render_special`.
  virtual std::string token_to_piece(Token t, bool render_special) const = 0;
  // Whole-sequence decode, equal to llama.cpp's llama_detokenize(remove_special=false,
  // unparse_special=render_special): with add_space_prefix the first token's leading
  // space is dropped; out-of-range ids render as nothing.
  virtual std::string decode(std::span<const Token> tokens, bool render_special) const = 0;

  virtual int32_t n_vocab() const = 0;
  virtual std::string_view model_name() const = 0;  // "llama", "gpt2"
  virtual std::string_view token_text(Token t) const = 0;  // vocabulary entry as stored
  virtual TokenAttr token_attr(Token t) const = 0;
  virtual Token bos() const = 0;  // -1 when none
  virtual Token eos() const = 0;
  virtual bool adds_bos() const = 0;
  virtual bool is_eog(Token t) const = 0;  // any end-of-generation token (eos, eot, eom, ...)
  // Added later: defaults keep other implementations (test fakes) compiling.
  virtual Token eot() const { return -1; }  // end of turn (-1 when none)
  virtual Token unk() const { return -1; }
  virtual Token pad() const { return -1; }
  virtual bool adds_eos() const { return false; }
};

// Streams text token by token: emits only complete UTF-8 sequences and holds back the rest
// until the next token completes them; bytes that can never form a character become
// U+FFFD, so every chunk is valid UTF-8. Pieces are concatenated as they are (no leading
// space stripping: a stream continues a prompt), like llama.cpp's server.
class StreamingDetokenizer {
 public:
  StreamingDetokenizer(const Tokenizer& tok, bool render_special);
  std::string push(Token t);  // text that became complete with this token
  std::string flush();        // whatever is left (invalid bytes become U+FFFD)

 private:
  const Tokenizer& tok_;
  bool render_special_;
  std::string pending_;
};

}  // namespace velo
