// Sampler: see sampler.h for the chain and its guarantees.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace velo {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Seed for the "random" default: a fresh one per request.
uint64_t resolve_seed(uint64_t seed) {
  if (seed != 0xFFFFFFFFFFFFFFFFull) return seed;
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

// Uniform double in [0, 1) from 53 RNG bits: identical on every platform.
double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

}  // namespace

std::vector<int32_t> collect_eog_tokens(const Tokenizer& tok) {
  std::vector<int32_t> out;
  for (int32_t t = 0; t < tok.n_vocab(); ++t)
    if (tok.is_eog(t)) out.push_back(t);
  return out;
}

Sampler::Sampler(const SamplingParams& params, int32_t n_vocab, std::span<const int32_t> eog_tokens)
    : p_(params), n_vocab_(n_vocab), rng_(resolve_seed(params.seed)) {
  if (p_.ignore_eos)
    for (int32_t t : eog_tokens)
      if (t >= 0 && t < n_vocab_) eog_.push_back(t);
  logits_.resize(static_cast<size_t>(n_vocab_));
  // Candidates: k of them with top-k, the whole vocabulary without.
  if (p_.temperature > 0) {
    size_t k = static_cast<size_t>(p_.top_k);
    cands_.reserve(k > 0 && k * 8 < static_cast<size_t>(n_vocab_) ? k : static_cast<size_t>(n_vocab_));
  }
  if (p_.wants_logprobs()) top_.reserve(SamplingParams::kMaxTopLogprobs);
  penalize_ = p_.repeat_last_n != 0 &&
              (p_.repeat_penalty != 1.0f || p_.frequency_penalty != 0.0f || p_.presence_penalty != 0.0f);
  if (penalize_) {
    window_ = p_.repeat_last_n > 0 ? static_cast<size_t>(p_.repeat_last_n) : 0;
    ring_.resize(window_);
    counts_.assign(static_cast<size_t>(n_vocab_), 0);
    slot_.assign(static_cast<size_t>(n_vocab_), -1);
    distinct_.reserve(window_ ? std::min<size_t>(window_, n_vocab_) : 1024);
  }
}

void Sampler::add_count(int32_t t) {
  if (counts_[t]++ == 0) {
    slot_[t] = static_cast<int32_t>(distinct_.size());
    distinct_.push_back(t);
  }
}

void Sampler::remove_count(int32_t t) {
  if (--counts_[t] > 0) return;
  int32_t last = distinct_.back();
  distinct_[slot_[t]] = last;
  slot_[last] = slot_[t];
  slot_[t] = -1;
  distinct_.pop_back();
}

void Sampler::accept(int32_t token) {
  if (!penalize_ || token < 0 || token >= n_vocab_) return;
  if (window_ > 0) {
    if (ring_len_ == window_) remove_count(ring_[ring_pos_]);
    else ++ring_len_;
    ring_[ring_pos_] = token;
    ring_pos_ = (ring_pos_ + 1) % window_;
  }
  add_count(token);
}

void Sampler::reset_history() {
  for (int32_t t : distinct_) {
    counts_[t] = 0;
    slot_[t] = -1;
  }
  distinct_.clear();
  ring_pos_ = ring_len_ = 0;
}

// llama.cpp's repetition penalty (shrink positive logits, grow negative ones)
// then OpenAI's frequency/presence penalties, for every token in the window.
void Sampler::apply_penalties() {
  const float rep = p_.repeat_penalty, freq = p_.frequency_penalty, pres = p_.presence_penalty;
  for (int32_t t : distinct_) {
    float l = logits_[t];
    if (rep != 1.0f) l = l <= 0 ? l * rep : l / rep;
    l -= static_cast<float>(counts_[t]) * freq + pres;
    logits_[t] = l;
  }
}

namespace {
// Strict "a ranks before b": larger logit, then lower id (deterministic ties).
struct Better {
  template <class C>
  bool operator()(const C& a, const C& b) const {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  }
};

// The best k of `logits` into `out` (cleared first), sorted best first.
// A bounded heap whose front is the worst kept: O(V) compares plus O(k log k)
// rarely-taken inserts; ids are scanned in order so equal logits keep the lower id.
template <class C>
void heap_top(std::span<const float> logits, size_t k, std::vector<C>& out) {
  out.clear();
  const size_t n = logits.size();
  for (size_t i = 0; i < n && out.size() < k; ++i) {
    out.push_back({static_cast<int32_t>(i), logits[i]});
    std::push_heap(out.begin(), out.end(), Better{});
  }
  for (size_t i = k; i < n; ++i) {
    if (!(logits[i] > out.front().logit)) continue;
    std::pop_heap(out.begin(), out.end(), Better{});
    out.back() = {static_cast<int32_t>(i), logits[i]};
    std::push_heap(out.begin(), out.end(), Better{});
  }
  std::sort_heap(out.begin(), out.end(), Better{});
}
}  // namespace

void Sampler::select_top(size_t k) {
  if (k * 8 < static_cast<size_t>(n_vocab_)) {
    heap_top(std::span<const float>(logits_), k, cands_);
    return;
  }
  cands_.clear();
  for (int32_t i = 0; i < n_vocab_; ++i) cands_.push_back({i, logits_[i]});
  if (k < cands_.size()) {
    std::nth_element(cands_.begin(), cands_.begin() + k, cands_.end(), Better{});
    cands_.resize(k);
  }
  std::sort(cands_.begin(), cands_.end(), Better{});
}

// Top-p over cands_[0..n): keeps the smallest best-first prefix whose mass
// reaches top_p. Without top-k the candidates are unsorted; sort them lazily in
// growing best-first blocks, so a peaked distribution never pays a full sort.
size_t Sampler::top_p_cut(size_t n) {
  float max_l = kNegInf;
  for (size_t i = 0; i < n; ++i) max_l = std::max(max_l, cands_[i].logit);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(cands_[i].logit - max_l));
  const double target = static_cast<double>(p_.top_p) * sum;
  double cum = 0;
  size_t sorted = (p_.top_k > 0) ? n : 0;  // top-k output is already sorted
  size_t i = 0;
  for (size_t block = 64;; block *= 2) {
    if (sorted < n) {
      size_t end = std::min(n, sorted + block);
      if (end < n)
        std::nth_element(cands_.begin() + sorted, cands_.begin() + end, cands_.begin() + n, Better{});
      std::sort(cands_.begin() + sorted, cands_.begin() + end, Better{});
      sorted = end;
    }
    for (; i < sorted; ++i) {
      cum += std::exp(static_cast<double>(cands_[i].logit - max_l));
      if (cum >= target) return i + 1;
    }
    if (sorted == n) return n;
  }
}

// Temperature then a draw from the softmax of cands_[0..n).
int32_t Sampler::draw(size_t n) {
  float max_l = kNegInf;
  for (size_t i = 0; i < n; ++i) max_l = std::max(max_l, cands_[i].logit);
  const double inv_t = 1.0 / p_.temperature;
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    float w = static_cast<float>(std::exp((cands_[i].logit - max_l) * inv_t));
    cands_[i].logit = w;  // the logit is not needed any more: keep the weight
    sum += w;
  }
  const double target = uniform01(rng_) * sum;
  double cum = 0;
  int32_t last = cands_[0].id;
  for (size_t i = 0; i < n; ++i) {
    if (cands_[i].logit <= 0) continue;
    cum += cands_[i].logit;
    last = cands_[i].id;
    if (cum > target) return last;
  }
  return last;  // rounding left target at the very end
}

void Sampler::fill_logprobs(int32_t chosen, TokenLogprob* lp) {
  float max_l = kNegInf;
  for (float l : logits_) max_l = std::max(max_l, l);
  double sum = 0;
  for (float l : logits_) sum += std::exp(static_cast<double>(l - max_l));
  const float lse = max_l + static_cast<float>(std::log(sum));
  lp->token = chosen;
  lp->logprob = logits_[chosen] - lse;
  lp->top.clear();
  if (p_.top_logprobs > 0) {
    heap_top(std::span<const float>(logits_), static_cast<size_t>(p_.top_logprobs), top_);
    for (const auto& c : top_) lp->top.emplace_back(c.id, c.logit - lse);
  }
}

SampleArgs Sampler::device_args(std::vector<int32_t>& tokens, std::vector<int32_t>& counts) {
  SampleArgs a;
  a.temperature = p_.temperature;
  a.top_k = p_.top_k;
  a.top_p = p_.top_p;
  a.min_p = p_.min_p;
  a.repeat_penalty = p_.repeat_penalty;
  a.presence_penalty = p_.presence_penalty;
  a.frequency_penalty = p_.frequency_penalty;
  a.penalty_offset = static_cast<int32_t>(tokens.size());
  a.n_penalty_tokens = num_penalty_tokens();
  if (penalize_) {
    for (int32_t t : distinct_) {
      tokens.push_back(t);
      counts.push_back(counts_[t]);
    }
  }
  if (p_.temperature > 0) a.u = uniform01(rng_);  // draw() takes exactly one
  return a;
}

Result<int32_t> Sampler::sample(std::span<const float> logits, TokenLogprob* lp) {
  if (logits.size() != static_cast<size_t>(n_vocab_))
    return make_error("sampler got " + std::to_string(logits.size()) + " logits, expected " +
                      std::to_string(n_vocab_));
  // Copy, checking for NaN and tracking the best token for the greedy path.
  bool nan = false;
  for (int32_t i = 0; i < n_vocab_; ++i) {
    float x = logits[i];
    nan |= std::isnan(x);
    logits_[i] = x;
  }
  if (nan) return make_error("the model produced NaN logits");
  for (const auto& [tok, bias] : p_.logit_bias) logits_[tok] += bias;
  for (int32_t t : eog_) logits_[t] = kNegInf;
  if (penalize_) apply_penalties();

  int32_t best = 0;
  for (int32_t i = 1; i < n_vocab_; ++i)
    if (logits_[i] > logits_[best]) best = i;
  if (logits_[best] == kNegInf) return make_error("no token can be sampled: every logit is -inf");

  int32_t chosen = best;
  if (p_.temperature > 0) {
    size_t n = p_.top_k > 0 ? std::min<size_t>(p_.top_k, n_vocab_) : static_cast<size_t>(n_vocab_);
    if (p_.top_k > 0) {
      select_top(n);
    } else {
      cands_.clear();
      for (int32_t i = 0; i < n_vocab_; ++i)
        if (logits_[i] != kNegInf) cands_.push_back({i, logits_[i]});
      n = cands_.size();
    }
    if (p_.top_p < 1.0f) n = top_p_cut(n);
    if (p_.min_p > 0.0f && n > 1) {
      // The candidates hold the best token (every step keeps it); keep those
      // within a factor min_p of its probability, in their current order.
      const float cut = logits_[best] + std::log(p_.min_p);
      size_t m = 0;
      for (size_t i = 0; i < n; ++i)
        if (cands_[i].logit >= cut) cands_[m++] = cands_[i];
      n = m;
    }
    chosen = draw(n);
  }
  if (lp && p_.wants_logprobs()) fill_logprobs(chosen, lp);
  return chosen;
}

}  // namespace velo
