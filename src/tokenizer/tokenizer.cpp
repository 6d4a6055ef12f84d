// Tokenizer over a validated Vocab: special-token split, then SPM or byte-level BPE per
// raw fragment; token_to_piece/decode mirror llama.cpp's token_to_piece/detokenize.
#include "tokenizer/tokenizer.h"

#include "tokenizer/encoders.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace velo {

namespace {

using tok::Vocab;

// llama.cpp's clean_up_tokenization_spaces passes, byte for byte.
std::string clean_spaces(const std::string& in) {
  auto pass = [](std::string src, auto body) {
    std::string dst;
    if (src.empty()) return dst;
    dst.push_back(src[0]);
    for (size_t i = 1; i < src.size(); ++i) body(src, dst, i);
    return dst;
  };
  // " ?", " !", " .", " ,": drop the space
  std::string s = pass(in, [](std::string& src, std::string& dst, size_t& i) {
    char x = src[i];
    if (src[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) dst.pop_back();
    dst.push_back(x);
  });
  // " ' " -> "'"
  s = pass(s, [](std::string& src, std::string& dst, size_t& i) {
    char x = src[i];
    if (x == '\'' && i + 1 < src.size() && src[i - 1] == ' ' && src[i + 1] == ' ') {
      dst.pop_back();
      src[++i] = '\0';
    }
    dst.push_back(x);
  });
  // " 's", " 'm", " 're", " 've": drop the space
  return pass(s, [](std::string& src, std::string& dst, size_t& i) {
    char x = src[i];
    const size_t n = src.size();
    if (src[i - 1] == ' ' && x == '\'' && i + 1 < n) {
      char x1 = src[i + 1];
      if (x1 == 's' || x1 == 'm') dst.pop_back();
      else if (x1 != 't' && x1 != 'd' && i + 2 < n) {
        char x2 = src[i + 2];
        if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) dst.pop_back();
      }
    }
    dst.push_back(x);
  });
}

class VocabTokenizer final : public Tokenizer {
 public:
  explicit VocabTokenizer(Vocab v) : v_(std::move(v)) {}

  std::vector<Token> encode(std::string_view text, bool add_bos, SpecialTokens special) const override {
    std::vector<Token> out;
    out.reserve(text.size() / 3 + 2);
    if (add_bos && v_.add_bos) out.push_back(v_.bos);
    std::vector<tok::Fragment> frags;
    tok::split_special(v_, text, special == SpecialTokens::Parse, frags);
    if (v_.type == tok::VocabType::Spm) {
      bool prev_special = true;  // the first fragment gets the prefix space too
      std::string buf;
      for (const auto& f : frags) {
        if (f.token >= 0) {
          out.push_back(f.token);
          prev_special = true;
          continue;
        }
        buf.clear();
        if (v_.add_space_prefix && prev_special) buf += "\xE2\x96\x81";
        for (char c : text.substr(f.pos, f.len)) {
          if (c == ' ') buf += "\xE2\x96\x81";
          else buf.push_back(c);
        }
        tok::spm_encode(v_, buf, out);
        prev_special = false;
      }
    } else {
      tok::BpeSession session(v_);
      for (const auto& f : frags) {
        if (f.token >= 0) out.push_back(f.token);
        else session.encode(text.substr(f.pos, f.len), out);
      }
    }
    if (add_bos && v_.add_eos) out.push_back(v_.eos);
    return out;
  }

  std::string token_to_piece(Token t, bool render_special) const override {
    if (t < 0 || t >= v_.n()) return "";
    if (!render_special && v_.has_attr(t, tok::kControl | tok::kUnknown)) return "";
    return v_.piece[static_cast<size_t>(t)];
  }

  std::string decode(std::span<const Token> tokens, bool render_special) const override {
    std::string out;
    bool remove_space = v_.add_space_prefix;
    for (Token t : tokens) {
      std::string p = token_to_piece(t, render_special);
      if (remove_space && !p.empty() && p[0] == ' ') p.erase(0, 1);
      remove_space = false;
      out += p;
    }
    return v_.clean_spaces ? clean_spaces(out) : out;
  }

  int32_t n_vocab() const override { return v_.n(); }
  std::string_view model_name() const override { return v_.model; }
  std::string_view token_text(Token t) const override {
    return t >= 0 && t < v_.n() ? std::string_view(v_.text[static_cast<size_t>(t)]) : std::string_view();
  }
  TokenAttr token_attr(Token t) const override {
    if (t < 0 || t >= v_.n()) return TokenAttr::Unused;
    uint8_t a = v_.attr[static_cast<size_t>(t)];
    if (a & tok::kControl) return TokenAttr::Control;
    if (a & tok::kUserDefined) return TokenAttr::UserDefined;
    if (a & tok::kUnknown) return TokenAttr::Unknown;
    if (a & tok::kByte) return TokenAttr::Byte;
    if (a & tok::kNormal) return TokenAttr::Normal;
    return TokenAttr::Unused;
  }
  Token bos() const override { return v_.bos; }
  Token eos() const override { return v_.eos; }
  Token eot() const override { return v_.eot; }
  Token unk() const override { return v_.unk; }
  Token pad() const override { return v_.pad; }
  bool adds_bos() const override { return v_.add_bos; }
  bool adds_eos() const override { return v_.add_eos; }
  bool is_eog(Token t) const override { return t >= 0 && t < v_.n() && v_.eog[static_cast<size_t>(t)]; }

 private:
  Vocab v_;
};

// Copies `s`, replacing each byte that cannot start or continue a valid sequence with
// U+FFFD (an incomplete tail becomes one U+FFFD).
void append_sanitized(std::string_view s, std::string& out) {
  for (size_t pos = 0; pos < s.size();) {
    int n = unicode::valid_seq_len(s, pos);
    if (n > 0) {
      out.append(s.substr(pos, static_cast<size_t>(n)));
      pos += static_cast<size_t>(n);
      continue;
    }
    out += "\xEF\xBF\xBD";
    if (n < 0) break;
    ++pos;
  }
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const gguf::File& file) {
  auto v = Vocab::from_gguf(file);
  if (!v.ok()) return make_error("tokenizer: " + v.message());
  return std::unique_ptr<Tokenizer>(std::make_unique<VocabTokenizer>(std::move(v).value()));
}

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tok, bool render_special)
    : tok_(tok), render_special_(render_special) {}

std::string StreamingDetokenizer::push(Token t) {
  pending_ += tok_.token_to_piece(t, render_special_);
  size_t n = unicode::complete_utf8_prefix(pending_);
  std::string out;
  append_sanitized(std::string_view(pending_).substr(0, n), out);
  pending_.erase(0, n);
  return out;
}

std::string StreamingDetokenizer::flush() {
  std::string out;
  append_sanitized(pending_, out);
  pending_.clear();
  return out;
}

}  // namespace velo
