#include "bench_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace velo::cli {

Stats summarize(std::vector<double> s) {
  Stats st;
  st.samples = s;
  if (s.empty()) return st;
  std::sort(s.begin(), s.end());
  st.min = s.front();
  st.max = s.back();
  size_t n = s.size();
  st.median = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
  return st;
}

uint64_t weight_bytes_per_token(const gguf::File& f) {
  uint64_t total = 0;
  const bool tied = f.find_tensor("output.weight") == nullptr;
  for (const auto& t : f.tensors()) {
    if (t.name == "token_embd.weight" && !tied) continue;
    total += t.n_bytes;
  }
  return total;
}

Result<std::string> capture(const std::vector<std::string>& argv, bool with_stderr) {
  int fds[2];
  if (pipe(fds) != 0) return make_error("pipe failed");
  pid_t pid = fork();
  if (pid < 0) return make_error("fork failed");
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    if (with_stderr) dup2(fds[1], STDERR_FILENO);
    else if (FILE* null = std::fopen("/dev/null", "w")) dup2(fileno(null), STDERR_FILENO);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return make_error(argv[0] + " failed (exit status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
  return out;
}

void fill_seq(ScheduledSeq& s, uint64_t id, std::span<const int32_t> tokens, int32_t pos, int32_t first_block,
              int32_t block_size) {
  s.seq_id = id;
  s.tokens.assign(tokens.begin(), tokens.end());
  s.start_pos = pos;
  s.need_logits = true;
  const int32_t end = pos + static_cast<int32_t>(tokens.size());
  const int32_t n_blocks = (end + block_size - 1) / block_size;
  s.block_table.resize(static_cast<size_t>(n_blocks));
  for (int32_t b = 0; b < n_blocks; ++b) s.block_table[b] = first_block + b;
}

}  // namespace velo::cli
