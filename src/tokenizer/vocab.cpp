// Loading and validating a Vocab from GGUF metadata, following llama.cpp's defaults and
// its fix-ups (end-of-generation tokens found by name, CONTROL forced on them).
#include "tokenizer/vocab.h"

#include <algorithm>
#include <cstdio>
#include <initializer_list>
#include <array>
#include <deque>

#include "tokenizer/unicode.h"

namespace velo::tok {

namespace {

constexpr const char* kPrefix = "tokenizer.ggml.";
std::string key(const char* name) { return std::string(kPrefix) + name; }

uint8_t attr_from_type(int64_t t) {
  switch (t) {
    case 1: return kNormal;
    case 2: return kUnknown;
    case 3: return kControl;
    case 4: return kUserDefined;
    case 5: return kUnused;
    case 6: return kByte;
    default: return kUndefined;
  }
}

Result<bool> bool_or(const gguf::File& f, const std::string& k, bool fallback) {
  if (!f.find(k)) return fallback;
  return f.get_bool(k);
}

// An optional special-token id: absent keeps `id`; out of range is an error.
Status read_id(const gguf::File& f, const char* name, int32_t n, Token& id) {
  std::string k = key(name);
  if (!f.find(k)) return {};
  VELO_ASSIGN_OR_RETURN(uint64_t v, f.get_uint(k));
  if (v >= static_cast<uint64_t>(n))
    return make_error("key '" + k + "' = " + std::to_string(v) + " is out of range (vocabulary has " +
                      std::to_string(n) + " tokens)");
  id = static_cast<Token>(v);
  return {};
}

std::string hex_byte_token(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "<0x%02X>", b);
  return buf;
}

// The raw bytes of a token (llama.cpp's token_to_piece with special=true).
std::string make_piece(const Vocab& v, Token t) {
  const std::string& s = v.text[static_cast<size_t>(t)];
  uint8_t a = v.attr[static_cast<size_t>(t)];
  if (a & (kUnknown | kControl | kUserDefined)) return s;
  if (a & kNormal) {
    std::string out;
    if (v.type == VocabType::Spm) {  // U+2581 (the SPM space marker) back to ' '
      for (size_t i = 0; i < s.size();) {
        if (s.compare(i, 3, "\xE2\x96\x81") == 0) out.push_back(' '), i += 3;
        else out.push_back(s[i++]);
      }
      return out;
    }
    for (size_t pos = 0; pos < s.size();) {  // byte-level codepoints back to bytes
      uint32_t cp = unicode::decode_lenient(s, pos);
      int b = unicode::byte_of(cp);
      if (b >= 0) {
        out.push_back(static_cast<char>(b));
      } else {  // not a byte-level codepoint: llama.cpp writes a marker
        std::string enc;
        unicode::append_utf8(cp, enc);
        out += "[UNK_BYTE_0x";
        for (unsigned char c : enc) {
          char h[4];
          std::snprintf(h, sizeof h, "%02x", c);
          out += h;
        }
        out += s + "]";
      }
    }
    return out;
  }
  if (a & kByte) {
    unsigned b = 0;
    if (s.size() == 6 && std::sscanf(s.c_str(), "<0x%2X>", &b) == 1) return std::string(1, static_cast<char>(b));
    size_t pos = 0;
    int bb = s.empty() ? -1 : unicode::byte_of(unicode::decode_lenient(s, pos));
    return bb >= 0 ? std::string(1, static_cast<char>(bb)) : std::string();
  }
  return "";  // UNUSED / UNDEFINED render as nothing
}

Status load_merges(const gguf::File& f, Vocab& v) {
  VELO_ASSIGN_OR_RETURN(auto merges, f.get_string_array(key("merges")));
  if (merges.size() > kMaxMerges)
    return make_error("key 'tokenizer.ggml.merges' has " + std::to_string(merges.size()) + " entries, more than " +
                      std::to_string(kMaxMerges));
  const int32_t n = v.n();
  std::deque<std::string> extra_text;  // stable storage for the keys of `extra`
  StrMap<int32_t> extra(merges.size());
  auto intern = [&](std::string_view s) -> int32_t {
    if (const Token* t = v.index.find(s)) return *t;
    if (const int32_t* e = extra.find(s)) return *e;
    extra_text.emplace_back(s);
    int32_t id = n + static_cast<int32_t>(extra_text.size() - 1);
    extra.put(extra_text.back(), id);
    return id;
  };
  v.merges = U64Map<Vocab::Merge>(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    std::string_view m = merges[i];
    // "left right", split at the first space after the first byte (llama.cpp); anything
    // else can never match two non-empty symbols, so it is skipped.
    size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
    if (sp == std::string_view::npos || sp + 1 >= m.size()) continue;
    std::string_view a = m.substr(0, sp), b = m.substr(sp + 1);
    int32_t ia = intern(a), ib = intern(b);
    int32_t iab = intern(std::string(a) + std::string(b));
    uint64_t k = (static_cast<uint64_t>(static_cast<uint32_t>(ia)) << 32) | static_cast<uint32_t>(ib);
    v.merges.emplace(k, Vocab::Merge{static_cast<int32_t>(i), iab});  // first rank wins
  }
  // Initial symbols: one per byte, as its byte-level codepoint.
  for (int b = 0; b < 256; ++b) {
    std::string cp;
    unicode::append_utf8(unicode::byte_to_cp(static_cast<uint8_t>(b)), cp);
    const Token* t = v.index.find(cp);
    const int32_t* e = extra.find(cp);
    v.byte_sym[b] = t ? *t : e ? *e : -1;
    // Fallback when a merged symbol is not a token: llama.cpp looks up each byte of the
    // symbol's byte-level text as a one-byte string.
    v.byte_fallback[b].clear();
    for (char c : cp)
      if (const Token* ft = v.index.find(std::string_view(&c, 1))) v.byte_fallback[b].push_back(*ft);
  }
  return {};
}

void build_trie(Vocab& v) {
  // Sorted insertion order gives each node's children in byte order with no re-sorting.
  std::vector<Token> ids;
  for (Token t = 0; t < v.n(); ++t)
    if (v.has_attr(t, kControl | kUserDefined | kUnknown)) ids.push_back(t);
  std::sort(ids.begin(), ids.end(), [&](Token a, Token b) { return v.text[a] < v.text[b]; });
  // Build with per-node child lists, then flatten.
  std::vector<std::vector<std::pair<uint8_t, uint32_t>>> kids(1);
  std::vector<Token> tok(1, -1);
  for (Token t : ids) {
    uint32_t node = 0;
    for (unsigned char c : v.text[t]) {
      auto& k = kids[node];
      if (!k.empty() && k.back().first == c) {
        node = k.back().second;
        continue;
      }
      uint32_t child = static_cast<uint32_t>(kids.size());
      k.emplace_back(c, child);
      kids.emplace_back();
      tok.push_back(-1);
      node = child;
    }
    tok[node] = t;  // duplicates: the later id (in text order) wins, like the text index
  }
  v.trie.assign(kids.size(), {});
  v.edges.clear();
  for (size_t i = 0; i < kids.size(); ++i) {
    v.trie[i].edge_begin = static_cast<uint32_t>(v.edges.size());
    for (auto [c, child] : kids[i]) v.edges.push_back({c, child});
    v.trie[i].edge_end = static_cast<uint32_t>(v.edges.size());
    v.trie[i].token = tok[i];
  }
  for (auto [c, child] : kids[0]) v.first_byte[c >> 6] |= 1ull << (c & 63);
}

// llama.cpp's end-of-generation names; a token with one of these texts is EOG and CONTROL.
constexpr std::string_view kEogNames[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>", "[e~[",
};
// FIM tokens llama.cpp marks CONTROL; the pad/repo/sep ones also end generation.
constexpr std::string_view kFimControlNames[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>",
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>", "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>",
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>", "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>",
    "<|eom_id|>",
};
constexpr std::string_view kFimEogNames[] = {
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
    "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",
};
constexpr std::string_view kEotNames[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>",
    "<end_of_utterance>",
};

template <size_t N>
bool listed(const std::string_view (&names)[N], std::string_view s) {
  for (auto n : names)
    if (n == s) return true;
  return false;
}

Status mark_special(const gguf::File& f, Vocab& v) {
  const int32_t n = v.n();
  Token fim_pad = -1, fim_rep = -1, fim_sep = -1;
  VELO_TRY(read_id(f, "eot_token_id", n, v.eot));
  VELO_TRY(read_id(f, "eom_token_id", n, v.eom));
  VELO_TRY(read_id(f, "fim_pad_token_id", n, fim_pad));
  VELO_TRY(read_id(f, "fim_rep_token_id", n, fim_rep));
  VELO_TRY(read_id(f, "fim_sep_token_id", n, fim_sep));
  v.eog.assign(static_cast<size_t>(n), 0);
  for (Token t = 0; t < n; ++t) {
    std::string_view s = v.text[t];
    bool eog = listed(kEogNames, s), fim_eog = listed(kFimEogNames, s);
    if (v.eot < 0 && listed(kEotNames, s)) v.eot = t;
    if (v.eom < 0 && s == "<|eom_id|>") v.eom = t;
    if (eog || fim_eog || listed(kFimControlNames, s) || listed(kEotNames, s)) v.attr[t] |= kControl;
    if (eog || fim_eog) v.eog[t] = 1;
  }
  for (Token t : {v.eos, v.eot, v.eom, fim_pad, fim_rep, fim_sep})
    if (t >= 0) v.eog[t] = 1;
  return {};
}

}  // namespace

Result<Vocab> Vocab::from_gguf(const gguf::File& f) {
  Vocab v;
  if (!f.find(key("model"))) return make_error("no tokenizer in this GGUF (key 'tokenizer.ggml.model' is missing)");
  VELO_ASSIGN_OR_RETURN(std::string_view model, f.get_string(key("model")));
  v.model = std::string(model);
  if (model == "llama") {
    v.type = VocabType::Spm;
    v.bos = 1, v.eos = 2, v.unk = 0;
    v.add_space_prefix = true, v.add_bos = true;
  } else if (model == "gpt2") {
    v.type = VocabType::Bpe;
    v.bos = 11, v.eos = 11;
    std::string pre;
    if (f.find(key("pre"))) {
      VELO_ASSIGN_OR_RETURN(std::string_view p, f.get_string(key("pre")));
      pre = std::string(p);
    }
    auto cfg = pretok::parse_pre_type(pre);
    if (!cfg) return make_error("unsupported pre-tokenizer 'tokenizer.ggml.pre' = '" + pre + "'");
    v.pre = cfg->type;
    v.clean_spaces = cfg->clean_spaces;
    v.ignore_merges = cfg->ignore_merges;
    v.add_bos = cfg->add_bos;
  } else {
    return make_error("unsupported tokenizer model '" + v.model + "' (supported: llama, gpt2)");
  }

  VELO_ASSIGN_OR_RETURN(auto tokens, f.get_string_array(key("tokens")));
  if (tokens.empty()) return make_error("key 'tokenizer.ggml.tokens' is empty");
  if (tokens.size() > kMaxVocab)
    return make_error("vocabulary has " + std::to_string(tokens.size()) + " tokens, more than " + std::to_string(kMaxVocab));
  const size_t n = tokens.size();
  v.text.resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i].size() > kMaxTokenBytes)
      return make_error("token " + std::to_string(i) + " is " + std::to_string(tokens[i].size()) + " bytes, more than " +
                        std::to_string(kMaxTokenBytes));
    v.text[i] = tokens[i].empty() ? "[EMPTY_" + std::to_string(i) + "]" : std::string(tokens[i]);  // as llama.cpp
  }
  v.score.assign(n, 0.0f);
  if (f.find(key("scores"))) {
    VELO_ASSIGN_OR_RETURN(auto scores, f.get_float_array(key("scores")));
    if (scores.size() != n)
      return make_error("key 'tokenizer.ggml.scores' has " + std::to_string(scores.size()) + " entries for " +
                        std::to_string(n) + " tokens");
    v.score = std::move(scores);
  }
  v.attr.assign(n, kNormal);
  if (f.find(key("token_type"))) {
    VELO_ASSIGN_OR_RETURN(auto types, f.get_int_array(key("token_type")));
    if (types.size() != n)
      return make_error("key 'tokenizer.ggml.token_type' has " + std::to_string(types.size()) + " entries for " +
                        std::to_string(n) + " tokens");
    for (size_t i = 0; i < n; ++i) v.attr[i] = attr_from_type(types[i]);
  }
  v.index = StrMap<Token>(n);
  for (size_t i = 0; i < n; ++i) v.index.put(v.text[i], static_cast<Token>(i));

  const int32_t ni = static_cast<int32_t>(n);
  for (Token* id : {&v.bos, &v.eos, &v.unk})
    if (*id >= ni) *id = -1;  // a default outside a small vocabulary is disabled (llama.cpp)
  VELO_TRY(read_id(f, "bos_token_id", ni, v.bos));
  VELO_TRY(read_id(f, "eos_token_id", ni, v.eos));
  VELO_TRY(read_id(f, "unknown_token_id", ni, v.unk));
  VELO_TRY(read_id(f, "padding_token_id", ni, v.pad));
  VELO_ASSIGN_OR_RETURN(v.add_space_prefix, bool_or(f, key("add_space_prefix"), v.add_space_prefix));
  VELO_ASSIGN_OR_RETURN(v.add_bos, bool_or(f, key("add_bos_token"), v.add_bos));
  VELO_ASSIGN_OR_RETURN(v.add_eos, bool_or(f, key("add_eos_token"), v.add_eos));
  if (v.add_bos && v.bos < 0) return make_error("the vocabulary adds a BOS token but has none");
  if (v.add_eos && v.eos < 0) return make_error("the vocabulary adds an EOS token but has none");
  VELO_TRY(mark_special(f, v));

  if (v.type == VocabType::Spm) {
    for (int b = 0; b < 256; ++b) {
      Token t = v.find(hex_byte_token(static_cast<uint8_t>(b)));
      if (t < 0) {
        char c = static_cast<char>(b);
        t = v.find(std::string_view(&c, 1));
      }
      v.byte_token[b] = t;
    }
  } else {
    std::fill(std::begin(v.byte_token), std::end(v.byte_token), -1);
    VELO_TRY(load_merges(f, v));
  }
  build_trie(v);
  v.piece.resize(n);
  for (size_t i = 0; i < n; ++i) v.piece[i] = make_piece(v, static_cast<Token>(i));
  return v;
}

}  // namespace velo::tok
